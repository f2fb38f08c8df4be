/**
 * Which shards a task takes (DESIGN.md protocol 7, without scans). A launch lists its shards in
 * the order they should start (heaviest first when the plan ordered them so); task t owns the
 * positions t, t + T, t + 2T, … of that list and takes them in order. A task with nothing left
 * takes work from others: from the end of a random other task's list (the shards its owner would
 * reach last), an unclaimed shard, or the back half of a range someone holds. Each look is a read
 * or a create-only write, so finding work costs O(1) expected store operations, never a walk over
 * the launch.
 */
import { rangeCount, type RangeSet } from "./ranges.js";

/** The shard at `position` of a launch's shard list (sorted ranges of shard numbers). */
export function shardAt(shards: RangeSet, position: number): number {
  let p = position;
  for (const [a, b] of shards) {
    if (p < b - a) return a + p;
    p -= b - a;
  }
  throw new RangeError(`Expected a position below ${rangeCount(shards)}, got ${position}`);
}

/** Positions of the launch's list that task `t` of `tasks` owns, first to last. */
export function* ownPositions(total: number, tasks: number, t: number): Generator<number> {
  for (let p = t; p < total; p += tasks) yield p;
}

/** The same positions, last to first: where a thief looks. */
export function* ownPositionsFromEnd(total: number, tasks: number, t: number): Generator<number> {
  if (t >= total) return;
  const last = t + Math.floor((total - 1 - t) / tasks) * tasks;
  for (let p = last; p >= t; p -= tasks) yield p;
}

/**
 * Other tasks that own shards (indices below `owners`), in a random order, drawn lazily (a launch
 * may have 10,000 tasks). With more tasks than shards, only the first `owners` hold any: a thief
 * that drew from all of them would mostly look where nothing ever was, and give up early.
 */
export function* victims(owners: number, me: number, random: () => number): Generator<number> {
  const mine = me >= 0 && me < owners;
  const n = mine ? owners - 1 : owners;
  if (n <= 0) return;
  // A random start and a stride coprime with n visit every other task once, in a shuffled order.
  const start = Math.floor(random() * n);
  let stride = 1 + Math.floor(random() * n);
  while (gcd(stride, n) !== 1) stride = (stride % n) + 1;
  for (let k = 0; k < n; k++) {
    const v = (start + k * stride) % n;
    yield mine && v >= me ? v + 1 : v;
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
