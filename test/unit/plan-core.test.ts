import { describe, expect, it } from "vitest";
import { CHUNK_TARGET_BYTES } from "../../src/core/items.js";
import { cutShards, DEFAULT_PLAN_LIMITS, hashCollisions, hashKey, heaviestFirst, packChunks, PlanLimitExceeded, shardsAtMost } from "../../src/core/plan.js";
import { seededRandom } from "../../src/core/time.js";
import { readPlanLimits } from "../../src/config/env.js";

describe("heaviestFirst", () => {
  it("orders by cost, heaviest first, ties in source order", () => {
    const costs = [3, 1, 3, 0, 7, 1, 3];
    expect([...heaviestFirst(costs.length, (i) => costs[i]!)]).toEqual([4, 0, 2, 6, 1, 5, 3]);
  });

  it("agrees with a stable comparator sort on random costs (seeded), fractions and duplicates included", () => {
    const random = seededRandom(11);
    for (let round = 0; round < 20; round++) {
      const n = 1 + Math.floor(random() * 3000);
      const costs = Array.from({ length: n }, () => (random() < 0.3 ? Math.floor(random() * 5) : random() * 1e6 * (random() < 0.1 ? 1e9 : 1)));
      const expected = costs.map((_, i) => i).sort((a, b) => costs[b]! - costs[a]! || a - b);
      expect([...heaviestFirst(n, (i) => costs[i]!)], `round ${round}`).toEqual(expected);
    }
  });

  it("treats -0 as 0 and refuses costs that are not finite numbers from 0 up", () => {
    expect([...heaviestFirst(3, (i) => [0, -0, 1][i]!)]).toEqual([2, 0, 1]);
    expect(() => heaviestFirst(1, () => Number.NaN)).toThrow(RangeError);
    expect(() => heaviestFirst(1, () => -1)).toThrow(RangeError);
    expect(() => heaviestFirst(1, () => Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it("handles no items and one item", () => {
    expect([...heaviestFirst(0, () => 0)]).toEqual([]);
    expect([...heaviestFirst(1, () => 5)]).toEqual([0]);
  });
});

describe("hashCollisions", () => {
  it("groups positions of equal hashes, in position order, groups by their second position", () => {
    const hashes = [7, 3, 9, 3, 7, 1, 3, 9];
    expect(hashCollisions(hashes.length, (p) => hashes[p]!).map((g) => [...g])).toEqual([
      [1, 3, 6],
      [0, 4],
      [2, 7],
    ]);
  });

  it("finds nothing among distinct hashes, and handles none at all", () => {
    expect(hashCollisions(5, (p) => p * 1000)).toEqual([]);
    expect(hashCollisions(0, () => 0)).toEqual([]);
  });

  it("over 200,000 distinct keys gives only the rare 32-bit hash collisions, and finds a real duplicate", () => {
    const keys = Array.from({ length: 200_000 }, (_, i) => `item-${i}`);
    const distinct = hashCollisions(keys.length, (p) => hashKey(keys[p]!));
    // Expected ~5 pairs at this size (n² / 2^33).
    expect(distinct.length).toBeLessThan(50);
    keys.push("item-123456");
    const withDuplicate = hashCollisions(keys.length, (p) => hashKey(keys[p]!));
    expect(withDuplicate.map((g) => [...g])).toContainEqual([123_456, 200_000]);
  });

  it("hashKey spreads similar keys", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) seen.add(hashKey(`doc-${i}`));
    expect(seen.size).toBeGreaterThan(9_990);
  });
});

describe("cutShards", () => {
  it("cuts in the given order and stops once the shard limit is passed", () => {
    const weights = [1, 1, 1, 1, 1];
    const cut = cutShards({ itemsPerShard: 2 }, (i) => weights[i]!, 5);
    expect([...cut.ends]).toEqual([2, 4, 5]);
    expect([...cut.weights]).toEqual([2, 2, 1]);
    expect(() => cutShards({ itemsPerShard: 2 }, (i) => weights[i]!, 5, undefined, 2)).toThrow(PlanLimitExceeded);
  });

  it("weighs items through the order (positions to source indices)", () => {
    const weights = [1, 10, 1, 10];
    const order = Uint32Array.from([1, 3, 0, 2]);
    const cut = cutShards({ weightPerShard: 10 }, (i) => weights[i]!, 4, order);
    expect([...cut.ends]).toEqual([1, 2, 4]);
    expect([...cut.weights]).toEqual([10, 10, 2]);
  });

  it("makes no shard of no items", () => {
    expect(cutShards({ count: 3 }, () => 1, 0).ends).toHaveLength(0);
  });

  it("grows past its first guess without losing shards (many shards)", () => {
    const cut = cutShards({ itemsPerShard: 1 }, () => 1, 5000);
    expect(cut.ends.length).toBe(5000);
    expect(cut.ends[4999]).toBe(5000);
  });
});

describe("packChunks", () => {
  it("puts at most 100 shards in an object", () => {
    const spans = packChunks(new Array(250).fill(10));
    expect(spans.map((s) => [s.first, s.end])).toEqual([
      [0, 100],
      [100, 200],
      [200, 250],
    ]);
  });

  it("starts a new object before one would pass the byte target; a larger shard is an object alone", () => {
    const t = CHUNK_TARGET_BYTES;
    const spans = packChunks([t / 2, t / 2, 1, 2 * t, 5, 6], 40);
    expect(spans.map((s) => [s.first, s.end])).toEqual([
      [40, 42],
      [42, 43],
      [43, 44],
      [44, 46],
    ]);
  });
});

describe("limits", () => {
  it("shardsAtMost is known for count and itemsPerShard, not for weight", () => {
    expect(shardsAtMost({ count: 10 }, 3)).toBe(3);
    expect(shardsAtMost({ itemsPerShard: 100 }, 1001)).toBe(11);
    expect(shardsAtMost({ weightPerShard: 5 }, 1001)).toBeUndefined();
  });

  it("the error names the limit and how to raise it", () => {
    const e = new PlanLimitExceeded("maxItems", 10, "has more than 10 items");
    expect(e.message).toMatch(/over the limit maxItems=10: raise it for this run \(setting maxItems\) or for every run \(SHARDRUN_MAX_ITEMS\)/);
    expect(e.code).toBe("INVALID_INPUT");
  });

  it("readPlanLimits reads only what is set, and refuses what is not a whole number", () => {
    expect(readPlanLimits({})).toEqual({});
    expect(readPlanLimits({ SHARDRUN_MAX_ITEMS: "500", SHARDRUN_MAX_SHARDS: " 20 " })).toEqual({ maxItems: 500, maxShards: 20 });
    expect(() => readPlanLimits({ SHARDRUN_MAX_SHARDS: "2e5" })).toThrow(/SHARDRUN_MAX_SHARDS to be a whole number/);
    expect(() => readPlanLimits({ SHARDRUN_MAX_ITEMS: "0" })).toThrow(/SHARDRUN_MAX_ITEMS/);
    expect(DEFAULT_PLAN_LIMITS).toEqual({ maxItems: 10_000_000, maxShards: 200_000 });
  });
});
