/**
 * The shard planner: decides, item by item, where one shard ends and the next begins. It holds
 * no items, only counters, so a plan of millions of items streams through in constant memory.
 * Shards are contiguous slices of the run's item list.
 */
import type { ShardPolicy } from "./job.js";

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
