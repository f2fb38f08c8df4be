/** Items over time from parts' and checkpoints' write times (the dashboard's chart). */
import { describe, expect, it } from "vitest";
import { itemsOverTime, itemsPerMinute, settledEvents, type ShardTimes } from "../../src/core/throughput.js";

const T0 = Date.parse("2026-11-22T02:00:00.000Z");
const at = (s: number) => T0 + s * 1000;
const iso = (s: number) => new Date(at(s)).toISOString();

function shard(n: number, parts: [number, number, number, boolean?][], cp: [number, number, number]): ShardTimes {
  return {
    shard: n,
    checkpoint: { at: at(cp[0]), succeeded: cp[1], failed: cp[2] },
    parts: parts.map(([s, ok, f, named]) => ({ at: at(s), succeeded: ok, failed: f, named: named ?? true })),
  };
}

describe("settledEvents", () => {
  it("takes each part at its time, and what the checkpoint settled without a part at the checkpoint's", () => {
    // Shard 0: parts of 5 and 4 items (one failure in the second), a crash failed one more item.
    const events = settledEvents([shard(0, [[10, 5, 0], [20, 4, 1]], [25, 9, 2]), shard(1, [[5, 3, 0]], [6, 3, 0])]);
    expect(events).toEqual([
      { at: at(5), succeeded: 3, failed: 0 },
      { at: at(10), succeeded: 5, failed: 0 },
      { at: at(20), succeeded: 4, failed: 1 },
      { at: at(25), succeeded: 0, failed: 1 },
    ]);
  });

  it("counts live parts on top of the checkpoint, and skips what has no time", () => {
    const events = settledEvents([shard(0, [[10, 5, 0], [30, 2, 0, false]], [12, 5, 0]), { shard: 1, checkpoint: { at: 0, succeeded: 4, failed: 0 }, parts: [] }]);
    expect(events).toEqual([
      { at: at(10), succeeded: 5, failed: 0 },
      { at: at(30), succeeded: 2, failed: 0 },
    ]);
  });
});

describe("itemsOverTime", () => {
  const shards = [shard(0, [[10, 5, 0], [20, 4, 1]], [21, 9, 1]), shard(1, [[15, 10, 0]], [16, 10, 0])];

  it("has a point per part of a finished run, from its start at zero to its end at status's numbers", () => {
    const points = itemsOverTime({ createdAt: iso(0), finishedAt: iso(30), now: at(999), shards, final: { succeeded: 19, failed: 1 } });
    expect(points).toEqual([
      { t: iso(0), succeeded: 0, failed: 0 },
      { t: iso(10), succeeded: 5, failed: 0 },
      { t: iso(15), succeeded: 15, failed: 0 },
      { t: iso(20), succeeded: 19, failed: 1 },
      { t: iso(30), succeeded: 19, failed: 1 },
    ]);
  });

  it("runs to now while the run goes on, and never ends before its last event", () => {
    expect(itemsOverTime({ createdAt: iso(0), now: at(40), shards, final: { succeeded: 19, failed: 1 } }).at(-1)).toEqual({ t: iso(40), succeeded: 19, failed: 1 });
    expect(itemsOverTime({ createdAt: iso(0), finishedAt: iso(12), now: at(40), shards, final: { succeeded: 19, failed: 1 } }).at(-1)!.t).toBe(iso(20));
  });

  it("takes failures a rerun re-planned off the failed line when it did", () => {
    const rerun = [shard(0, [[10, 8, 2]], [10, 8, 2]), shard(1, [[70, 2, 0]], [71, 2, 0])];
    const points = itemsOverTime({ createdAt: iso(0), finishedAt: iso(80), now: at(999), shards: rerun, superseded: [{ at: at(60), failed: 2 }], final: { succeeded: 10, failed: 0 } });
    expect(points.map((p) => [p.t, p.succeeded, p.failed])).toEqual([
      [iso(0), 0, 0],
      [iso(10), 8, 2],
      [iso(60), 8, 0],
      [iso(70), 10, 0],
      [iso(80), 10, 0],
    ]);
  });

  it("keeps at most maxPoints points, each the last of its time slice, totals still right", () => {
    const many = Array.from({ length: 1000 }, (_, k) => shard(k, [[k / 10, 1, 0]], [k / 10, 1, 0]));
    const points = itemsOverTime({ createdAt: iso(0), finishedAt: iso(100), now: at(999), shards: many, final: { succeeded: 1000, failed: 0 }, maxPoints: 50 });
    expect(points.length).toBeLessThanOrEqual(50);
    expect(points.length).toBeGreaterThan(40);
    for (let k = 1; k < points.length; k++) {
      expect(Date.parse(points[k]!.t)).toBeGreaterThanOrEqual(Date.parse(points[k - 1]!.t));
      expect(points[k]!.succeeded).toBeGreaterThanOrEqual(points[k - 1]!.succeeded);
    }
    expect(points.at(-2)!.succeeded).toBe(1000);
    expect(() => itemsOverTime({ createdAt: iso(0), now: at(1), shards: [], final: { succeeded: 0, failed: 0 }, maxPoints: 2 })).toThrow("from 3 up");
  });

  it("is two points for a run with nothing listed, and nothing for a bad start", () => {
    expect(itemsOverTime({ createdAt: iso(0), finishedAt: iso(5), now: at(9), shards: [], final: { succeeded: 3, failed: 0 } })).toEqual([
      { t: iso(0), succeeded: 0, failed: 0 },
      { t: iso(5), succeeded: 3, failed: 0 },
    ]);
    expect(itemsOverTime({ createdAt: "yesterday", now: at(9), shards: [], final: { succeeded: 0, failed: 0 } })).toEqual([]);
  });

  it("gives items per minute over the chart", () => {
    const points = itemsOverTime({ createdAt: iso(0), finishedAt: iso(30), now: at(999), shards, final: { succeeded: 19, failed: 1 } });
    expect(itemsPerMinute(points)).toBe(40);
    expect(itemsPerMinute(points.slice(0, 1))).toBe(0);
  });
});
