import { describe, expect, it } from "vitest";
import { RetryPolicy } from "../../src/core/backoff.js";
import { CheckpointCadence } from "../../src/core/job.js";
import { Checkpoint, RunRecord, type FailedItem, type RunState, type ShardEntry } from "../../src/core/model.js";
import type { Range } from "../../src/core/ranges.js";
import { computeStatus, failedItems, finishedState, type LaunchStatus } from "../../src/core/status.js";

const RUN_ID = "20261122-020000-demo-ab12";
const CREATED = "2026-11-22T02:00:00.000Z";

function shard(id: string, round: number, indices: Range[]): ShardEntry {
  const count = indices.reduce((n, [s, e]) => n + e - s, 0);
  return { id, round, count, weight: count, indices: indices.map(([s, e]) => [s, e]) };
}

function run(shards: ShardEntry[], over: Partial<RunRecord> = {}): RunRecord {
  return RunRecord.parse({
    v: 1,
    runId: RUN_ID,
    job: { name: "demo", module: "dist/jobs/demo/index.js", version: "1.0.0" },
    args: {},
    trigger: "manual",
    createdAt: CREATED,
    state: "planned",
    plan: {
      policy: { itemsPerShard: 4 },
      totalItems: shards.filter((s) => s.round === 0).reduce((n, s) => n + s.count, 0),
      totalWeight: shards.filter((s) => s.round === 0).reduce((n, s) => n + s.weight, 0),
      shards,
    },
    settings: {
      concurrency: 4,
      retry: RetryPolicy.parse({}),
      checkpoint: CheckpointCadence.parse({}),
      leaseTtlMs: 30_000,
      taskTimeoutSeconds: 600,
      maxRetries: 3,
      parallelism: 2,
      tasks: 2,
      maxLaunches: 3,
    },
    ...over,
  });
}

function checkpoint(id: string, itemCount: number, over: Partial<Checkpoint> = {}): Checkpoint {
  return Checkpoint.parse({
    v: 1,
    runId: RUN_ID,
    shard: id,
    itemCount,
    epoch: 1,
    owner: null,
    heartbeatAt: 0,
    leaseTtlMs: 30_000,
    state: "open",
    done: [],
    failed: [],
    parts: [],
    executions: 0,
    updatedAt: CREATED,
    ...over,
  });
}

function fail(pos: number, i: number, error = "boom"): FailedItem {
  return { pos, i, key: `k${i}`, error, attempts: 3, reason: "error" };
}

const launch = (n: number, state: LaunchStatus["state"]): LaunchStatus => ({ n, execution: `exec-${n}`, taskCount: 2, state });

// Round 0: two shards of four items, run-wide indices 0..3 and 4..7.
const s0 = shard("s00000", 0, [[0, 4]]);
const s1 = shard("s00001", 0, [[4, 8]]);

describe("computeStatus: counts", () => {
  it("counts succeeded, failed and pending items, shard states and executions", () => {
    const r = run([s0, s1]);
    const cps = new Map<string, Checkpoint | null>([
      // s0: all settled (3 done, item 2 failed) -> done.
      ["s00000", checkpoint("s00000", 4, { state: "done", done: [[0, 2], [3, 4]], failed: [fail(2, 2)], executions: 6 })],
      // s1: one item done, owned -> running.
      [
        "s00001",
        checkpoint("s00001", 4, {
          epoch: 2,
          done: [[0, 1]],
          executions: 2,
          owner: { execution: "exec-0", taskIndex: 1, attempt: 2, launch: 0 },
        }),
      ],
    ]);
    const st = computeStatus(r, cps, [launch(0, "running")]);
    expect(st.runId).toBe(RUN_ID);
    expect(st.job).toBe("demo");
    expect(st.createdAt).toBe(CREATED);
    expect(st.items).toEqual({ total: 8, succeeded: 4, failed: 1, pending: 3 });
    expect(st.shards).toEqual({ total: 2, done: 1, running: 1 });
    expect(st.executions).toBe(8);
    expect(st.shardList).toEqual([
      { id: "s00000", round: 0, state: "done", items: 4, done: 3, failed: 1, epoch: 1 },
      { id: "s00001", round: 0, state: "running", items: 4, done: 1, failed: 0, epoch: 2, owner: "exec-0/1#2" },
    ]);
    expect(st.launches).toEqual([launch(0, "running")]);
    expect(st.state).toBe("running");
  });

  it("treats a shard without a checkpoint (missing or null) as pending with nothing done", () => {
    const st = computeStatus(run([s0, s1]), new Map([["s00000", null]]), []);
    expect(st.shardList.map((s) => [s.state, s.done, s.failed, s.epoch])).toEqual([
      ["pending", 0, 0, 0],
      ["pending", 0, 0, 0],
    ]);
    expect(st.shardList[0]).not.toHaveProperty("owner");
    expect(st.items).toEqual({ total: 8, succeeded: 0, failed: 0, pending: 8 });
    expect(st.executions).toBe(0);
  });

  it("an open, released shard (no owner) is pending, not running", () => {
    const cps = new Map([["s00000", checkpoint("s00000", 4, { done: [[0, 2]] })]]);
    const st = computeStatus(run([s0]), cps, []);
    expect(st.shardList[0]!.state).toBe("pending");
    expect(st.shards.running).toBe(0);
    expect(st.items.succeeded).toBe(2);
  });

  it("copies finishedAt from the run record only when it is set", () => {
    expect(computeStatus(run([s0]), new Map(), [])).not.toHaveProperty("finishedAt");
    const done = run([s0], { state: "succeeded", finishedAt: "2026-11-22T03:00:00.000Z" });
    expect(computeStatus(done, new Map(), []).finishedAt).toBe("2026-11-22T03:00:00.000Z");
  });
});

describe("computeStatus: state", () => {
  const allDone = (failedInS1: number) =>
    new Map<string, Checkpoint | null>([
      ["s00000", checkpoint("s00000", 4, { state: "done", done: [[0, 4]] })],
      [
        "s00001",
        checkpoint("s00001", 4, {
          state: "done",
          done: failedInS1 === 4 ? [] : [[failedInS1, 4]],
          failed: Array.from({ length: failedInS1 }, (_, p) => fail(p, 4 + p)),
        }),
      ],
    ]);

  it("is pending before any launch", () => {
    expect(computeStatus(run([s0, s1]), new Map(), []).state).toBe("pending");
  });

  it("is running while a launch is pending or running", () => {
    expect(computeStatus(run([s0, s1]), new Map(), [launch(0, "pending")]).state).toBe("running");
    expect(computeStatus(run([s0, s1]), new Map(), [launch(0, "failed"), launch(1, "running")]).state).toBe("running");
  });

  it("is running after a launch ended with shards left (the orchestrator continues it)", () => {
    expect(computeStatus(run([s0, s1]), new Map(), [launch(0, "failed")]).state).toBe("running");
    expect(computeStatus(run([s0, s1], { state: "running" }), new Map(), []).state).toBe("running");
  });

  it("is succeeded when every shard is done with no failed item", () => {
    expect(computeStatus(run([s0, s1]), allDone(0), [launch(0, "succeeded")]).state).toBe("succeeded");
  });

  it("is partial when every shard is done with some items failed", () => {
    const st = computeStatus(run([s0, s1]), allDone(2), [launch(0, "succeeded")]);
    expect(st.state).toBe("partial");
    expect(st.items).toEqual({ total: 8, succeeded: 6, failed: 2, pending: 0 });
  });

  it("is failed when every shard is done and no item succeeded", () => {
    const cps = new Map([
      ["s00000", checkpoint("s00000", 4, { state: "done", failed: [0, 1, 2, 3].map((p) => fail(p, p)) })],
      ["s00001", checkpoint("s00001", 4, { state: "done", failed: [0, 1, 2, 3].map((p) => fail(p, 4 + p)) })],
    ]);
    expect(computeStatus(run([s0, s1]), cps, [launch(0, "succeeded")]).state).toBe("failed");
  });

  it("a live launch wins over a recorded terminal state", () => {
    expect(computeStatus(run([s0, s1], { state: "succeeded" }), allDone(0), [launch(1, "running")]).state).toBe("running");
  });

  it("the recorded terminal state wins when no launch is live", () => {
    for (const recorded of ["succeeded", "partial", "failed", "cancelled"] as const satisfies readonly RunState[]) {
      // Shards not done at all: the record still decides.
      expect(computeStatus(run([s0, s1], { state: recorded }), new Map(), [launch(0, "cancelled")]).state).toBe(recorded);
      // Shards all done and clean: the record still decides.
      expect(computeStatus(run([s0, s1], { state: recorded }), allDone(0), []).state).toBe(recorded);
    }
  });
});

describe("failedItems and rounds", () => {
  // Round 0 failed items 1, 2 and 5; round 1 re-plans all three into one new shard.
  const r1 = shard("s00002", 1, [
    [1, 3],
    [5, 6],
  ]);
  const roundZero = new Map<string, Checkpoint | null>([
    ["s00000", checkpoint("s00000", 4, { state: "done", done: [[0, 1], [3, 4]], failed: [fail(1, 1, "r0 e1"), fail(2, 2, "r0 e2")] })],
    ["s00001", checkpoint("s00001", 4, { state: "done", done: [[0, 1], [2, 4]], failed: [fail(1, 5, "r0 e5")] })],
  ]);

  it("lists round-0 failures, sorted by item index, with their shard", () => {
    const r = run([s0, s1]);
    expect(failedItems(r, roundZero)).toEqual([
      { i: 1, key: "k1", shard: "s00000", error: "r0 e1", attempts: 3, reason: "error" },
      { i: 2, key: "k2", shard: "s00000", error: "r0 e2", attempts: 3, reason: "error" },
      { i: 5, key: "k5", shard: "s00001", error: "r0 e5", attempts: 3, reason: "error" },
    ]);
  });

  it("a newer round supersedes: succeeded in round 1 is not failed; failed in both is failed once, with the round-1 error", () => {
    const r = run([s0, s1, r1], { state: "running" });
    expect(r.plan.totalItems).toBe(8);
    const cps = new Map(roundZero);
    // r1 positions: 0 -> item 1, 1 -> item 2, 2 -> item 5. Items 1 and 5 succeed, item 2 fails again.
    cps.set("s00002", checkpoint("s00002", 3, { state: "done", done: [[0, 1], [2, 3]], failed: [fail(1, 2, "r1 e2")], executions: 4 }));

    const failed = failedItems(r, cps);
    expect(failed).toEqual([{ i: 2, key: "k2", shard: "s00002", error: "r1 e2", attempts: 3, reason: "error" }]);

    const st = computeStatus(r, cps, [launch(0, "succeeded"), launch(1, "succeeded")]);
    expect(st.items).toEqual({ total: 8, succeeded: 7, failed: 1, pending: 0 });
    expect(st.shards).toEqual({ total: 3, done: 3, running: 0 });
    expect(st.state).toBe("partial");
  });

  it("the round order of the plan does not matter: a round-1 shard listed first still supersedes", () => {
    const r = run([r1, s0, s1]);
    const cps = new Map(roundZero);
    cps.set("s00002", checkpoint("s00002", 3, { state: "done", done: [[0, 1], [2, 3]], failed: [fail(1, 2, "r1 e2")] }));
    expect(failedItems(r, cps).map((f) => [f.i, f.error])).toEqual([[2, "r1 e2"]]);
  });

  it("an item re-planned into a round-1 shard not run yet is pending, not failed", () => {
    const r = run([s0, s1, r1], { state: "running" });
    const st = computeStatus(r, roundZero, [launch(0, "succeeded")]);
    expect(failedItems(r, roundZero)).toEqual([]);
    expect(st.items).toEqual({ total: 8, succeeded: 5, failed: 0, pending: 3 });
    expect(st.state).toBe("running");
  });

  it("round 2 supersedes round 1", () => {
    const r2 = shard("s00003", 2, [[2, 3]]);
    const r = run([s0, s1, r1, r2]);
    const cps = new Map(roundZero);
    cps.set("s00002", checkpoint("s00002", 3, { state: "done", done: [[0, 1], [2, 3]], failed: [fail(1, 2, "r1 e2")] }));
    cps.set("s00003", checkpoint("s00003", 1, { state: "done", failed: [fail(0, 2, "r2 e2")] }));
    expect(failedItems(r, cps)).toEqual([{ i: 2, key: "k2", shard: "s00003", error: "r2 e2", attempts: 3, reason: "error" }]);
    cps.set("s00003", checkpoint("s00003", 1, { state: "done", done: [[0, 1]] }));
    expect(failedItems(r, cps)).toEqual([]);
  });
});

describe("finishedState", () => {
  it("maps succeeded/failed counts to a final state", () => {
    expect(finishedState(10, 0)).toBe("succeeded");
    expect(finishedState(0, 0)).toBe("succeeded");
    expect(finishedState(9, 1)).toBe("partial");
    expect(finishedState(0, 3)).toBe("failed");
  });
});
