/**
 * The shard planner's pure parts: where one shard ends and the next begins (counters only, no
 * items), the limits a plan must stay within, the heaviest-first order, duplicate-key detection
 * in typed arrays, and how shards are packed into items objects.
 */
import { z } from "zod";
import { InvalidInputError } from "./errors.js";
import { MAX_SHARDS } from "./ids.js";
import type { ShardPolicy } from "./job.js";
import { CHUNK_TARGET_BYTES, MAX_SHARDS_PER_CHUNK } from "./items.js";

export interface PlanTotals {
  items: number;
  weight: number;
}

export interface ShardCutter {
  /** Adds the next item's weight; true when the current shard ends after this item. */
  add(weight: number): boolean;
}

/**
 * `totals` is needed only by `{ count }`, which balances the shards by weight: each shard closes
 * once the running weight reaches its share of the total, and never leaves fewer items than
 * shards still to fill.
 */
export function createShardCutter(policy: ShardPolicy, totals?: PlanTotals): ShardCutter {
  if ("itemsPerShard" in policy) {
    let n = 0;
    return {
      add() {
        n++;
        if (n < policy.itemsPerShard) return false;
        n = 0;
        return true;
      },
    };
  }
  if ("weightPerShard" in policy) {
    let w = 0;
    return {
      add(weight) {
        w += weight;
        if (w < policy.weightPerShard) return false;
        w = 0;
        return true;
      },
    };
  }
  if (!totals) throw new TypeError("Expected `totals` for a shard policy by count");
  const shards = Math.max(1, Math.min(policy.count, totals.items));
  const share = totals.weight / shards;
  let seen = 0;
  let weightSeen = 0;
  let closed = 0;
  return {
    add(weight) {
      seen++;
      weightSeen += weight;
      if (closed >= shards - 1) return false; // the last shard takes the rest
      const itemsLeft = totals.items - seen;
      const shardsLeft = shards - closed - 1;
      if (weightSeen >= share * (closed + 1) - 1e-9 || itemsLeft <= shardsLeft) {
        closed++;
        return true;
      }
      return false;
    },
  };
}

export function needsTotals(policy: ShardPolicy): boolean {
  return "count" in policy;
}

/** Task count for a launch when none was asked for: one per shard, up to ten. */
export function defaultTaskCount(shards: number, jobDefault?: number): number {
  return Math.max(1, Math.min(shards, jobDefault ?? 10));
}

/**
 * Static assignment of shards to task indices: task i gets shards i, i+T, i+2T, … With fewer
 * tasks than shards, dynamic claiming lets a task that finishes early take more.
 */
export function assignShards(shards: readonly string[], taskCount: number): string[][] {
  const out: string[][] = Array.from({ length: taskCount }, () => []);
  shards.forEach((s, i) => out[i % taskCount]!.push(s));
  return out;
}

// ---------------------------------------------------------------- limits

/**
 * Limits on what one run may plan. The defaults keep one mistaken request (`count=100000000`)
 * from filling a disk or a bucket, while leaving room for real million-item runs; raise them per
 * run or for a deployment (SHARDRUN_MAX_ITEMS, SHARDRUN_MAX_SHARDS).
 */
export const PlanLimits = z.strictObject({
  /**
   * Items in one run, across its plan (re-planned rounds do not add items).
   * @default 10_000_000
   */
  maxItems: z.number().int().min(1).max(1_000_000_000),
  /**
   * Shards in one run, rounds included. Shard ids have six digits, so never above 1,000,000.
   * @default 200_000
   */
  maxShards: z.number().int().min(1).max(MAX_SHARDS),
});
export type PlanLimits = z.infer<typeof PlanLimits>;

export const DEFAULT_PLAN_LIMITS = { maxItems: 10_000_000, maxShards: 200_000 } as const satisfies PlanLimits;

/** A plan went over one of its limits: refused at once, with the limit's name and how to raise it. */
export class PlanLimitExceeded extends InvalidInputError {
  readonly limit: keyof PlanLimits;
  readonly value: number;
  constructor(limit: keyof PlanLimits, value: number, what: string) {
    const env = limit === "maxItems" ? "SHARDRUN_MAX_ITEMS" : "SHARDRUN_MAX_SHARDS";
    super(
      `the plan ${what}, over the limit ${limit}=${value}: raise it for this run (setting ${limit}) or for every run (${env}), ` +
        (limit === "maxItems" ? "or give the job fewer items" : "or make shards larger (--items-per-shard, --shards)"),
    );
    this.limit = limit;
    this.value = value;
  }
}

/**
 * The most shards a policy can make from `items` items, when that is known before cutting
 * (`{ weightPerShard }` depends on the weights).
 */
export function shardsAtMost(policy: ShardPolicy, items: number): number | undefined {
  if ("count" in policy) return Math.min(policy.count, Math.max(items, 1));
  if ("itemsPerShard" in policy) return Math.ceil(items / policy.itemsPerShard);
  return undefined;
}

// ---------------------------------------------------------------- heaviest first

/**
 * Positions 0..n-1 ordered by `costs`, heaviest first, ties in position order. An LSD radix sort
 * on the costs' bit patterns (for doubles from 0 up, the bits order like the numbers): stable,
 * O(n), and no comparator call per pair, which at a million items is the difference between
 * ~50 ms and a second. Costs must be finite and at least 0 (the planner makes them so).
 * Little-endian platforms only (every platform Node ships for): word 0 is the low word.
 */
export function heaviestFirst(n: number, costAt: (position: number) => number): Uint32Array {
  const scratch = new Float64Array(1);
  const words = new Uint32Array(scratch.buffer);
  // Inverted, so that an ascending sort of the keys puts the heaviest first.
  const lo = new Uint32Array(n);
  const hi = new Uint32Array(n);
  for (let p = 0; p < n; p++) {
    const cost = costAt(p);
    if (!(cost >= 0) || cost === Number.POSITIVE_INFINITY) throw new RangeError(`Expected costs to be finite numbers from 0 up, got ${cost} at ${p}`);
    scratch[0] = cost + 0; // -0 + 0 is +0: one bit pattern for zero
    lo[p] = ~words[0]! >>> 0;
    hi[p] = ~words[1]! >>> 0;
  }
  let order = new Uint32Array(n);
  for (let p = 0; p < n; p++) order[p] = p;
  let spare = new Uint32Array(n);
  const counts = new Uint32Array(65536);
  for (let pass = 0; pass < 4; pass++) {
    const word = pass < 2 ? lo : hi;
    const shift = pass % 2 === 0 ? 0 : 16;
    counts.fill(0);
    for (let p = 0; p < n; p++) counts[(word[order[p]!]! >>> shift) & 0xffff]!++;
    // All equal in this digit: the pass would leave the order as it is.
    if (counts[(word[order[0] ?? 0]! >>> shift) & 0xffff] === n) continue;
    let sum = 0;
    for (let d = 0; d < 65536; d++) {
      const c = counts[d]!;
      counts[d] = sum;
      sum += c;
    }
    for (let p = 0; p < n; p++) {
      const at = order[p]!;
      spare[counts[(word[at]! >>> shift) & 0xffff]!++] = at;
    }
    [order, spare] = [spare, order];
  }
  return order;
}

// ---------------------------------------------------------------- duplicate keys

/**
 * Positions whose key hashes are equal: the candidates for duplicate keys, for the caller to
 * confirm by comparing the keys themselves (two different keys share a 32-bit hash about a hundred
 * times in a million). Each group is in position order; groups are ordered by their second
 * position, so that the first duplicate in source order is found first.
 *
 * The planner keeps one 32-bit hash per item (4 bytes) instead of the keys in a Set (~50 bytes
 * each for short keys, ~170 for URLs, measured at a million) or a hash table (~17 bytes, held all
 * through the first pass): the hashes are sorted once, at the end, as (hash, position) pairs in a
 * BigUint64Array by the engine's native numeric sort.
 */
export function hashCollisions(n: number, hashAt: (position: number) => number): Uint32Array[] {
  if (n > 0xffffffff) throw new RangeError(`Expected at most 2^32 - 1 positions, got ${n}`);
  const pairs = new BigUint64Array(n);
  // Little-endian words: the low one is the position, the high one the hash.
  const words = new Uint32Array(pairs.buffer);
  for (let p = 0; p < n; p++) {
    words[2 * p] = p;
    words[2 * p + 1] = hashAt(p);
  }
  pairs.sort();
  const groups: Uint32Array[] = [];
  for (let a = 0; a < n; ) {
    let b = a + 1;
    while (b < n && words[2 * b + 1] === words[2 * a + 1]) b++;
    if (b - a > 1) {
      const group = new Uint32Array(b - a);
      for (let k = a; k < b; k++) group[k - a] = words[2 * k]!;
      groups.push(group);
    }
    a = b;
  }
  return groups.sort((x, y) => x[1]! - y[1]!);
}

/** A 32-bit hash of a string (FNV-1a over UTF-16 code units, then murmur3's finalizer). */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// ---------------------------------------------------------------- packing shards into objects

/** Consecutive shards [first, end) that share one items object. */
export interface ChunkSpan {
  first: number;
  end: number;
  bytes: number;
}

/**
 * Packs shards (by their byte lengths, in shard order) into items objects of at most
 * MAX_SHARDS_PER_CHUNK shards and about CHUNK_TARGET_BYTES: a shard that would take an object
 * past the target starts the next one, and a shard larger than the target is an object alone.
 */
export function packChunks(shardBytes: ArrayLike<number>, firstShard = 0, o: { maxShards?: number; targetBytes?: number } = {}): ChunkSpan[] {
  const maxShards = o.maxShards ?? MAX_SHARDS_PER_CHUNK;
  const target = o.targetBytes ?? CHUNK_TARGET_BYTES;
  const out: ChunkSpan[] = [];
  let current: ChunkSpan | undefined;
  for (let s = 0; s < shardBytes.length; s++) {
    const b = shardBytes[s]!;
    if (!current || current.end - current.first >= maxShards || (current.bytes > 0 && current.bytes + b > target)) {
      current = { first: firstShard + s, end: firstShard + s, bytes: 0 };
      out.push(current);
    }
    current.end++;
    current.bytes += b;
  }
  return out;
}

// ---------------------------------------------------------------- cutting a whole plan

export interface Cut {
  /** End (exclusive) of each shard, in positions of the plan's order. */
  ends: Uint32Array;
  /** Weight of each shard. */
  weights: Float64Array;
}

/**
 * Cuts `count` items into shards by `policy`, walking them in `order` (positions → source
 * indices; source order when absent). Stops as soon as the shards would pass `maxShards`.
 */
export function cutShards(policy: ShardPolicy, weightAt: (index: number) => number, count: number, order?: Uint32Array, maxShards = MAX_SHARDS): Cut {
  let total = 0;
  for (let p = 0; p < count; p++) total += weightAt(p);
  const cutter = createShardCutter(policy, { items: count, weight: total });
  const cap = Math.min(maxShards, shardsAtMost(policy, count) ?? maxShards) + 1;
  let ends = new Uint32Array(Math.min(cap, 1024));
  let shardWeights = new Float64Array(ends.length);
  let shards = 0;
  let w = 0;
  const close = (end: number) => {
    if (shards >= maxShards) throw new PlanLimitExceeded("maxShards", maxShards, `needs more than ${maxShards} shards`);
    if (shards === ends.length) {
      const e = new Uint32Array(Math.max(ends.length + 1, Math.min(ends.length * 2, cap)));
      e.set(ends);
      ends = e;
      const sw = new Float64Array(e.length);
      sw.set(shardWeights);
      shardWeights = sw;
    }
    ends[shards] = end;
    shardWeights[shards] = w;
    shards++;
    w = 0;
  };
  for (let p = 0; p < count; p++) {
    const weight = weightAt(order ? order[p]! : p);
    w += weight;
    if (cutter.add(weight)) close(p + 1);
  }
  if (shards === 0 || ends[shards - 1] !== count) {
    if (count > 0) close(count);
  }
  return { ends: ends.slice(0, shards), weights: shardWeights.slice(0, shards) };
}
