/**
 * Sets of item indices as sorted, disjoint, half-open ranges [start, end). A shard of a million
 * items that is mostly done stays a few numbers in its checkpoint.
 */
export type Range = readonly [start: number, end: number];
export type RangeSet = readonly Range[];

export function rangeCount(set: RangeSet): number {
  let n = 0;
  for (const [s, e] of set) n += e - s;
  return n;
}

export function rangeHas(set: RangeSet, i: number): boolean {
  let lo = 0;
  let hi = set.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [s, e] = set[mid]!;
    if (i < s) hi = mid - 1;
    else if (i >= e) lo = mid + 1;
    else return true;
  }
  return false;
}

/** Adds indices (any order, duplicates allowed) and returns a new normalized set. */
export function rangeAdd(set: RangeSet, indices: Iterable<number>): Range[] {
  const extra = [...indices].sort((a, b) => a - b).map((i) => [i, i + 1] as Range);
  return rangeUnion(set, extra);
}

export function rangeUnion(a: RangeSet, b: RangeSet): Range[] {
  const all = [...a, ...b].sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [s, e] of all) {
    if (e <= s) continue;
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** The indices of [0, size) not in the set, in order. */
export function* rangeMissing(set: RangeSet, size: number): Generator<number> {
  let next = 0;
  for (const [s, e] of set) {
    for (let i = next; i < Math.min(s, size); i++) yield i;
    next = Math.max(next, e);
  }
  for (let i = next; i < size; i++) yield i;
}

export function* rangeIndices(set: RangeSet): Generator<number> {
  for (const [s, e] of set) for (let i = s; i < e; i++) yield i;
}
