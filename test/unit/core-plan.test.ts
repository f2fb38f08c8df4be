import { describe, expect, it } from "vitest";
import type { ShardPolicy } from "../../src/core/job.js";
import { assignShards, createShardCutter, defaultTaskCount, needsTotals } from "../../src/core/plan.js";
import { seededRandom as prng } from "../../src/core/time.js";


/**
 * Cuts `weights` the way the planner does (src/orchestrator/plan.ts): a shard closes when the
 * cutter says so after an item, and whatever is left at the end is the last shard.
 */
function cut(policy: ShardPolicy, weights: readonly number[]): number[][] {
  const totals = { items: weights.length, weight: weights.reduce((a, b) => a + b, 0) };
  const cutter = createShardCutter(policy, totals);
  const shards: number[][] = [];
  let current: number[] = [];
  for (const w of weights) {
    current.push(w);
    if (cutter.add(w)) {
      shards.push(current);
      current = [];
    }
  }
  if (current.length) shards.push(current);
  return shards;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

describe("createShardCutter({ itemsPerShard })", () => {
  it("closes a shard every N items; the remainder is the last shard", () => {
    const shards = cut({ itemsPerShard: 3 }, Array(10).fill(1));
    expect(shards.map((s) => s.length)).toEqual([3, 3, 3, 1]);
  });

  it("ignores weights", () => {
    const shards = cut({ itemsPerShard: 2 }, [100, 1, 1, 100, 5]);
    expect(shards.map((s) => s.length)).toEqual([2, 2, 1]);
  });

  it("with itemsPerShard 1 closes after every item", () => {
    const cutter = createShardCutter({ itemsPerShard: 1 });
    expect([cutter.add(1), cutter.add(1), cutter.add(1)]).toEqual([true, true, true]);
  });

  it("does not need totals", () => {
    expect(needsTotals({ itemsPerShard: 5 })).toBe(false);
    expect(() => createShardCutter({ itemsPerShard: 5 })).not.toThrow();
  });
});

describe("createShardCutter({ weightPerShard })", () => {
  it("closes a shard once its weight reaches the limit", () => {
    const shards = cut({ weightPerShard: 10 }, [4, 4, 2, 3, 3, 3, 1, 5]);
    expect(shards).toEqual([
      [4, 4, 2],
      [3, 3, 3, 1],
      [5],
    ]);
  });

  it("closes a shard with an item heavier than the limit, and starts afresh after it", () => {
    // First in its shard: the heavy item is a shard of its own.
    expect(cut({ weightPerShard: 10 }, [25, 1, 2])).toEqual([[25], [1, 2]]);
    // After lighter items: it ends the shard it lands in; the next shard starts at zero.
    expect(cut({ weightPerShard: 10 }, [2, 25, 3, 4, 3])).toEqual([[2, 25], [3, 4, 3]]);
    // Several heavy items in a row: one shard each.
    expect(cut({ weightPerShard: 10 }, [11, 50, 10])).toEqual([[11], [50], [10]]);
  });

  it("does not carry the overshoot of one shard into the next", () => {
    // 9 + 9 = 18 closes the first shard; if 8 carried over, 8 would close the second at once.
    expect(cut({ weightPerShard: 10 }, [9, 9, 8, 1, 1])).toEqual([[9, 9], [8, 1, 1]]);
  });

  it("handles fractional limits and weights", () => {
    expect(cut({ weightPerShard: 0.5 }, [0.25, 0.25, 0.1, 0.4, 0.3])).toEqual([[0.25, 0.25], [0.1, 0.4], [0.3]]);
  });

  it("does not need totals", () => {
    expect(needsTotals({ weightPerShard: 1 })).toBe(false);
    expect(() => createShardCutter({ weightPerShard: 1 })).not.toThrow();
  });
});

describe("createShardCutter({ count })", () => {
  it("needs totals", () => {
    expect(needsTotals({ count: 3 })).toBe(true);
    expect(() => createShardCutter({ count: 3 })).toThrow(TypeError);
  });

  it("with equal weights makes N equal shards", () => {
    expect(cut({ count: 4 }, Array(100).fill(1)).map((s) => s.length)).toEqual([25, 25, 25, 25]);
  });

  it("with uneven division makes exactly N non-empty shards", () => {
    const shards = cut({ count: 3 }, Array(10).fill(1));
    expect(shards).toHaveLength(3);
    expect(sum(shards.map((s) => s.length))).toBe(10);
    for (const s of shards) expect(s.length).toBeGreaterThanOrEqual(3);
  });

  it("balances skewed weights: every shard's weight is within one item of total/N", () => {
    // Weights that grow along the list: equal item counts would give very unequal shards.
    const weights = Array.from({ length: 1000 }, (_, i) => 1 + Math.floor(i / 10));
    const n = 8;
    const shards = cut({ count: n }, weights);
    const share = sum(weights) / n;
    const maxItem = Math.max(...weights);
    expect(shards).toHaveLength(n);
    for (const s of shards) expect(Math.abs(sum(s) - share)).toBeLessThan(maxItem);
    // The light head needs many more items than the heavy tail to reach the same weight.
    expect(shards[0]!.length).toBeGreaterThan(2 * shards[n - 1]!.length);
  });

  it("balances random skewed weights (seeded) within one max item of total/N", () => {
    const random = prng(7);
    for (let round = 0; round < 50; round++) {
      const items = 200 + Math.floor(random() * 800);
      // Mostly light items with rare heavy ones.
      const weights = Array.from({ length: items }, () => (random() < 0.05 ? 20 + Math.floor(random() * 30) : 1 + random()));
      const n = 2 + Math.floor(random() * 12);
      const shards = cut({ count: n }, weights);
      const share = sum(weights) / n;
      const maxItem = Math.max(...weights);
      expect(shards).toHaveLength(n);
      expect(shards.flat()).toEqual(weights);
      for (const s of shards) expect(Math.abs(sum(s) - share), `round ${round}`).toBeLessThan(maxItem);
    }
  });

  it("never makes more than N shards nor an empty shard, whatever the weights (seeded)", () => {
    const random = prng(99);
    for (let round = 0; round < 300; round++) {
      const items = 1 + Math.floor(random() * 40);
      const n = 1 + Math.floor(random() * 20);
      const kind = round % 4;
      const weights = Array.from({ length: items }, (_, i) =>
        kind === 0 ? 1 : kind === 1 ? (i === 0 ? 1000 : 1) : kind === 2 ? (i === items - 1 ? 1000 : 1) : Math.floor(random() * 50),
      );
      const shards = cut({ count: n }, weights);
      expect(shards.length, `round ${round}`).toBe(Math.min(n, items));
      for (const s of shards) expect(s.length).toBeGreaterThan(0);
      expect(shards.flat()).toEqual(weights);
    }
  });

  it("gives one item per shard when there are fewer items than N", () => {
    expect(cut({ count: 10 }, [5, 1, 7])).toEqual([[5], [1], [7]]);
    expect(cut({ count: 2 }, [3])).toEqual([[3]]);
  });

  it("a heavy first item closes its own shard, and the rest still fill N shards", () => {
    const shards = cut({ count: 3 }, [100, 1, 1, 1, 1, 1]);
    expect(shards).toHaveLength(3);
    expect(shards[0]).toEqual([100]);
    for (const s of shards) expect(s.length).toBeGreaterThan(0);
  });

  it("the last shard takes the rest: the cutter never closes once N - 1 shards are closed", () => {
    const weights = [1, 1, 50, 50, 50, 50];
    const cutter = createShardCutter({ count: 2 }, { items: weights.length, weight: sum(weights) });
    const closes = weights.map((w) => cutter.add(w));
    expect(closes.filter(Boolean)).toHaveLength(1);
    // Weight 202, share 101: after 1 + 1 + 50 + 50 = 102 the first shard closes.
    expect(closes).toEqual([false, false, false, true, false, false]);
  });

  it("with count 1 never closes: one shard of everything", () => {
    expect(cut({ count: 1 }, [1, 2, 3, 1000])).toEqual([[1, 2, 3, 1000]]);
  });
});

describe("assignShards", () => {
  it("assigns round robin: task i gets shards i, i+T, i+2T, …", () => {
    const shards = ["s0", "s1", "s2", "s3", "s4", "s5", "s6"];
    expect(assignShards(shards, 3)).toEqual([
      ["s0", "s3", "s6"],
      ["s1", "s4"],
      ["s2", "s5"],
    ]);
  });

  it("gives every task a list, empty ones included, when tasks outnumber shards", () => {
    expect(assignShards(["a", "b"], 4)).toEqual([["a"], ["b"], [], []]);
  });

  it("assigns every shard exactly once", () => {
    const shards = Array.from({ length: 23 }, (_, i) => `s${i}`);
    const out = assignShards(shards, 5);
    expect(out).toHaveLength(5);
    expect(out.flat().sort()).toEqual([...shards].sort());
  });

  it("with one task gives it every shard in order", () => {
    expect(assignShards(["a", "b", "c"], 1)).toEqual([["a", "b", "c"]]);
  });
});

describe("defaultTaskCount", () => {
  it("is one task per shard, up to ten", () => {
    expect(defaultTaskCount(3)).toBe(3);
    expect(defaultTaskCount(10)).toBe(10);
    expect(defaultTaskCount(250)).toBe(10);
  });

  it("uses the job's default as the cap instead of ten", () => {
    expect(defaultTaskCount(250, 40)).toBe(40);
    expect(defaultTaskCount(5, 40)).toBe(5);
    expect(defaultTaskCount(8, 2)).toBe(2);
  });

  it("is at least one, even for zero shards", () => {
    expect(defaultTaskCount(0)).toBe(1);
    expect(defaultTaskCount(0, 5)).toBe(1);
  });
});
