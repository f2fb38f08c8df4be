import { describe, expect, it } from "vitest";
import { RetryPolicy } from "../../src/core/backoff.js";
import { claimedCheckpoint, commit } from "../../src/core/checkpoint.js";
import { CheckpointCadence } from "../../src/core/job.js";
import { RunRecord, type Checkpoint, type FailedItem, type PlanRound, type RunState, type ShardEntry } from "../../src/core/model.js";
import type { Range } from "../../src/core/ranges.js";
import { computeStatus, failedItems, finishedState, summarizeCheckpoint, toleranceExceeded, type LaunchStatus, type ShardSummary } from "../../src/core/status.js";

const RUN_ID = "20261122-020000-demo-ab12";
const CREATED = "2026-11-22T02:00:00.000Z";

function entry(n: number, round: number, indices: Range[]): ShardEntry {
  const count = indices.reduce((k, [s, e]) => k + e - s, 0);
  return { id: `s${String(n).padStart(6, "0")}`, round, count, weight: count, indices: indices.map(([s, e]) => [s, e]) };
}

function run(rounds: PlanRound[], over: Partial<RunRecord> = {}): RunRecord {
  return RunRecord.parse({
    v: 2,
    runId: RUN_ID,
    job: { name: "demo", module: "dist/jobs/demo/index.js", version: "1.0.0" },
    args: {},
    trigger: "manual",
    createdAt: CREATED,
    state: "planned",
    plan: {
      policy: { itemsPerShard: 4 },
      totalItems: rounds[0]?.items ?? 0,
      totalWeight: rounds[0]?.items ?? 0,
      shardCount: rounds.reduce((k, r) => k + r.shards, 0),
      rounds,
      itemChunks: [0],
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

const round0 = (shards: number, items: number): PlanRound => ({ round: 0, firstShard: 0, shards, items, superseded: 0 });
const me = { execution: "x", taskIndex: 0, attempt: 0, launch: 0 };
const TERMS = { leaseTtlMs: 30_000, lookahead: 4, mode: "checkpoint" as const };

function fail(pos: number, i: number, error = "boom"): FailedItem {
  return { pos, i, key: `k${i}`, error, attempts: 3, reason: "error" };
}

/** A checkpoint of shard n with `done` positions done and `failed` failed. */
function cp(n: number, items: number, done: number[], failed: FailedItem[] = [], release = false): Checkpoint {
  const base = claimedCheckpoint(RUN_ID, `s${String(n).padStart(6, "0")}`, items, me, 0, TERMS);
  return commit(base, 1, me, { ...(done.length ? { part: { name: "000001-000001.jsonl", count: done.length, failed: 0 } } : {}), done, failed, executions: done.length + failed.length, inflight: [], release }, 0);
}

const launch = (n: number, state: LaunchStatus["state"]): LaunchStatus => ({ n, execution: `exec-${n}`, taskCount: 2, state });

describe("computeStatus: counts", () => {
  it("counts succeeded, failed and pending items, shard states and executions", () => {
    const r = run([round0(2, 8)]);
    const shards: ShardSummary[] = [summarizeCheckpoint(0, cp(0, 4, [0, 1, 3], [fail(2, 2)])), summarizeCheckpoint(1, cp(1, 4, [0]))];
    const st = computeStatus(r, shards, [launch(0, "running")]);
    expect(st.items).toEqual({ total: 8, succeeded: 4, failed: 1, pending: 3 });
    expect(st.shards).toEqual({ total: 2, done: 1, running: 1 });
    expect(st.executions).toBe(5);
    expect(st.state).toBe("running");
    expect(st.shardList).toEqual([]); // not asked for
  });

  it("treats a shard without a checkpoint as pending with nothing done, and lists shards when given the plan", () => {
    const r = run([round0(2, 8)]);
    const st = computeStatus(r, [summarizeCheckpoint(1, cp(1, 4, [0], [], true))], [], [entry(0, 0, [[0, 4]]), entry(1, 0, [[4, 8]])]);
    expect(st.items.pending).toBe(7);
    expect(st.shardList.map((s) => [s.id, s.state, s.items, s.done])).toEqual([
      ["s000000", "pending", 4, 0],
      ["s000001", "pending", 4, 1], // released: nobody holds it
    ]);
  });

  it("reports spend past the run budget as overshoot", () => {
    const r = run([round0(1, 4)], { settings: { ...run([round0(1, 4)]).settings, budgets: { run: { tokens: 100 } } } });
    const s = { ...summarizeCheckpoint(0, cp(0, 4, [0])), usage: { tokens: 130, usd: 0 } };
    expect(computeStatus(r, [s], []).overshoot).toEqual({ tokens: 30, usd: 0 });
    expect(computeStatus(r, [{ ...s, usage: { tokens: 90, usd: 0 } }], []).overshoot).toBeUndefined();
  });

  it("does not count failures a later round re-planned", () => {
    const r = run([round0(1, 4), { round: 1, firstShard: 1, shards: 1, items: 1, superseded: 1 }]);
    const st = computeStatus(r, [summarizeCheckpoint(0, cp(0, 4, [0, 1, 2], [fail(3, 3)])), summarizeCheckpoint(1, cp(1, 1, [0]))], []);
    expect(st.items).toMatchObject({ total: 4, succeeded: 4, failed: 0, pending: 0 });
  });
});

describe("computeStatus: state", () => {
  const r = (state: RunState) => run([round0(1, 4)], { state });
  const doneShard = [summarizeCheckpoint(0, cp(0, 4, [0, 1, 2, 3]))];
  it("is pending before any launch, planning while planned in the background", () => {
    expect(computeStatus(r("planned"), [], []).state).toBe("pending");
    expect(computeStatus(r("planning"), [], []).state).toBe("planning");
  });
  it("is running while a launch is pending or running, or after one ended with shards left", () => {
    expect(computeStatus(r("running"), [], [launch(0, "pending")]).state).toBe("running");
    expect(computeStatus(r("running"), [], [launch(0, "failed")]).state).toBe("running");
  });
  it("is succeeded, partial or failed once every shard is done", () => {
    expect(computeStatus(r("running"), doneShard, [launch(0, "succeeded")]).state).toBe("succeeded");
    expect(computeStatus(r("running"), [summarizeCheckpoint(0, cp(0, 4, [0, 1, 2], [fail(3, 3)]))], []).state).toBe("partial");
    expect(computeStatus(r("running"), [summarizeCheckpoint(0, cp(0, 2, [], [fail(0, 0), fail(1, 1)]))], []).state).toBe("failed");
  });
  it("a live launch wins over a recorded terminal state; the recorded state wins when none is live", () => {
    expect(computeStatus(r("cancelled"), [], [launch(0, "running")]).state).toBe("running");
    expect(computeStatus(r("budget_exhausted"), doneShard, [launch(0, "succeeded")]).state).toBe("budget_exhausted");
  });
});

describe("failedItems", () => {
  it("lists failures sorted by item index, with their shard, stack and last log line", () => {
    const a = cp(0, 4, [0], [{ ...fail(2, 2), stack: "at x", lastLog: "calling" }, fail(1, 1)]);
    const list = failedItems(run([round0(1, 4)]), new Map([["s000000", a]]));
    expect(list.map((f) => [f.i, f.shard])).toEqual([
      [1, "s000000"],
      [2, "s000000"],
    ]);
    expect(list[1]).toMatchObject({ stack: "at x", lastLog: "calling" });
  });

  it("a later round speaks for an item it re-planned: succeeded there is not failed; failed there is failed once, with its error", () => {
    const r = run([round0(1, 4), { round: 1, firstShard: 1, shards: 1, items: 2, superseded: 2 }]);
    const entries = [entry(0, 0, [[0, 4]]), entry(1, 1, [[1, 3]])];
    const checkpoints = new Map([
      ["s000000", cp(0, 4, [0, 3], [fail(1, 1, "old"), fail(2, 2, "old")])],
      ["s000001", cp(1, 2, [0], [fail(1, 2, "new")])],
    ]);
    const list = failedItems(r, checkpoints, entries);
    expect(list.map((f) => [f.i, f.error, f.shard])).toEqual([[2, "new", "s000001"]]);
  });
});

describe("finishedState and toleranceExceeded", () => {
  it("maps succeeded/failed counts to a final state", () => {
    expect(finishedState(5, 0)).toBe("succeeded");
    expect(finishedState(5, 1)).toBe("partial");
    expect(finishedState(0, 3)).toBe("failed");
  });
  it("compares failures with a count or a share of the run", () => {
    expect(toleranceExceeded({ count: 2 }, 3, 100)).toBe(true);
    expect(toleranceExceeded({ count: 2 }, 2, 100)).toBe(false);
    expect(toleranceExceeded({ percent: 1 }, 2, 100)).toBe(true);
    expect(toleranceExceeded(undefined, 99, 100)).toBe(false);
  });
});
