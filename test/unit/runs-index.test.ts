import { describe, expect, it } from "vitest";
import { keys } from "../../src/core/keys.js";
import { RunRecord, type RunState } from "../../src/core/model.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { backfillIndex, clearLive, indexKey, listRuns, liveRuns, markLive, recordRunState, removeStalePlans, writeIndexEntry } from "../../src/orchestrator/runs-index.js";
import { allKeys, planOptions, tempStore, wrapStore } from "./plan-support.js";
import { MemoryStore } from "./runs-index-store.js";

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** A run record as a planner commits it; `at` is its creation time. */
function runAt(at: Date, o: { job?: string; state?: RunState; items?: number; suffix?: string; idTime?: Date; trigger?: string } = {}): RunRecord {
  const t = o.idTime ?? at;
  const stamp = `${t.getUTCFullYear()}${pad(t.getUTCMonth() + 1)}${pad(t.getUTCDate())}-${pad(t.getUTCHours())}${pad(t.getUTCMinutes())}${pad(t.getUTCSeconds())}`;
  return RunRecord.parse({
    v: 2,
    runId: `${stamp}-${o.job ?? "echo"}-${o.suffix ?? "0000"}`,
    job: { name: o.job ?? "echo", module: "jobs/echo/index.js", version: "v1" },
    args: {},
    trigger: o.trigger ?? "cli",
    createdAt: at.toISOString(),
    state: o.state ?? "planned",
    plan: { policy: { itemsPerShard: 10 }, order: "source", totalItems: o.items ?? 10, totalWeight: 10, shardCount: 1, rounds: [{ round: 0, firstShard: 0, shards: 1, items: 10 }], itemChunks: [0] },
    settings: { concurrency: 1, retry: { attempts: 1, minDelayMs: 1, maxDelayMs: 1, factor: 2, jitter: false }, checkpoint: { everyItems: 1, everyMs: 1000 }, leaseTtlMs: 30000, taskTimeoutSeconds: 60, maxRetries: 0, parallelism: 1, tasks: 1, maxLaunches: 1 },
  });
}

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1, 12);

describe("recordRunState and listRuns", () => {
  it("lists runs newest first by creation time, not by id: a scheduled run's id may carry a later time", async () => {
    const store = new MemoryStore();
    const early = runAt(new Date(T0), { suffix: "000a" });
    // Created after `late`, but its id carries tomorrow's scheduled time.
    const scheduled = runAt(new Date(T0 + 3600_000), { suffix: "000b", idTime: new Date(T0 + DAY), trigger: "schedule:nightly" });
    const late = runAt(new Date(T0 + 7200_000), { suffix: "000c" });
    for (const r of [early, scheduled, late]) await recordRunState(store, r);
    expect((await listRuns(store)).map((r) => r.runId)).toEqual([late.runId, scheduled.runId, early.runId]);
  });

  it("rewrites the entry on a state change, with the failed count when given", async () => {
    const store = new MemoryStore();
    const run = runAt(new Date(T0));
    await recordRunState(store, run);
    await recordRunState(store, { ...run, state: "partial", finishedAt: new Date(T0 + 60_000).toISOString() }, { failed: 3 });
    expect(await listRuns(store)).toEqual([
      { runId: run.runId, job: "echo", state: "partial", createdAt: run.createdAt, finishedAt: new Date(T0 + 60_000).toISOString(), items: 10, failed: 3, trigger: "cli" },
    ]);
    // The summary is in the object's custom metadata, Cloud Storage style.
    const obj = await store.get(indexKey(run.runId, run.createdAt));
    expect(obj!.metadata).toMatchObject({ run_id: run.runId, state: "partial", failed: "3", items: "10" });
  });

  it("filters by job, state and creation time, and stops at the limit", async () => {
    const store = new MemoryStore();
    const runs = Array.from({ length: 30 }, (_, n) => runAt(new Date(T0 + n * 3600_000), { job: n % 3 ? "echo" : "sweep", state: n % 2 ? "succeeded" : "partial", suffix: pad(n, 4) }));
    for (const r of runs) await recordRunState(store, r);
    const sweeps = await listRuns(store, { job: "sweep", limit: 100 });
    expect(sweeps).toHaveLength(10);
    expect(sweeps.every((r) => r.state !== "unreadable" && r.job === "sweep")).toBe(true);
    expect((await listRuns(store, { state: "partial", limit: 100 })).every((r) => r.state === "partial")).toBe(true);
    const since = await listRuns(store, { since: new Date(T0 + 20 * 3600_000), limit: 100 });
    expect(since.map((r) => r.runId)).toEqual(runs.slice(20).reverse().map((r) => r.runId));
    expect((await listRuns(store, { limit: 5 })).map((r) => r.runId)).toEqual(runs.slice(25).reverse().map((r) => r.runId));
    await expect(listRuns(store, { limit: 0 })).rejects.toThrow(/limit/);
    await expect(listRuns(store, { since: "yesterday-ish" })).rejects.toThrow(/since/);
  });

  it("lists an unreadable entry as unreadable, with the reason and the object, and the rest as usual", async () => {
    const store = new MemoryStore({ metadata: false });
    const good = runAt(new Date(T0));
    await recordRunState(store, good);
    const badId = "20260101-130000-echo-dead";
    await store.put(keys.runIndex("20260101", badId), "{ truncated");
    const wrongId = "20260101-140000-echo-beef";
    await store.put(keys.runIndex("20260101", wrongId), JSON.stringify({ runId: wrongId, state: "exploded" }));
    const list = await listRuns(store);
    expect(list.map((r) => [r.runId, r.state])).toEqual([
      [wrongId, "unreadable"],
      [badId, "unreadable"],
      [good.runId, "planned"],
    ]);
    expect(list[1]).toMatchObject({ reason: expect.stringMatching(/^index entry: .*JSON/), object: keys.runIndex("20260101", badId) });
    expect(list[0]).toMatchObject({ reason: expect.stringMatching(/state/), object: keys.runIndex("20260101", wrongId) });
  });

  it("lists an entry with bad metadata as unreadable too", async () => {
    const store = new MemoryStore();
    const run = runAt(new Date(T0));
    await store.put(indexKey(run.runId, run.createdAt), "{}", { metadata: { run_id: run.runId, state: "planned", items: "many" } } as never);
    const [entry] = await listRuns(store);
    expect(entry).toMatchObject({ runId: run.runId, state: "unreadable", reason: expect.stringMatching(/^index entry metadata: /) });
  });
});

describe("listRuns over 10,000 runs", () => {
  async function fill(store: MemoryStore): Promise<RunRecord[]> {
    const runs: RunRecord[] = [];
    // 10,000 runs over 100 days, 100 a day.
    for (let n = 0; n < 10_000; n++) runs.push(runAt(new Date(T0 + Math.floor(n / 100) * DAY + (n % 100) * 60_000), { suffix: pad(n % 100, 4), job: n % 4 ? "echo" : "sweep" }));
    for (const r of runs) await recordRunState(store, r);
    await store.put(keys.runIndexComplete(), "{}");
    store.resetCalls();
    return runs;
  }

  it("costs three requests for the newest 50 when the store lists metadata", async () => {
    const store = new MemoryStore();
    const runs = await fill(store);
    const list = await listRuns(store, { limit: 50 });
    expect(list.map((r) => r.runId)).toEqual(runs.slice(-50).reverse().map((r) => r.runId));
    // The completeness marker, the days, the newest day's entries (with their metadata).
    expect(store.calls).toEqual({ get: 1, put: 0, list: 2, delete: 0 });
    store.resetCalls();
    // A second call on the same store object knows the index is complete.
    await listRuns(store, { limit: 150 });
    expect(store.calls).toEqual({ get: 0, put: 0, list: 3, delete: 0 });
  });

  it("reads only the newest day's entries when the store has no listed metadata, and skips other jobs' without reading them", async () => {
    const store = new MemoryStore({ metadata: false });
    const runs = await fill(store);
    const list = await listRuns(store, { limit: 50 });
    expect(list.map((r) => r.runId)).toEqual(runs.slice(-50).reverse().map((r) => r.runId));
    expect(store.calls.list).toBe(2);
    expect(store.calls.get).toBe(1 + 100);
    store.resetCalls();
    const sweeps = await listRuns(store, { limit: 20, job: "sweep" });
    expect(sweeps).toHaveLength(20);
    expect(store.calls.get).toBe(25);
  });
});

describe("stores written before the index", () => {
  it("get their entries the first time they are listed, once; a garbage run.json is listed as unreadable; a run that never committed is not listed", async () => {
    const store = wrapStore(tempStore());
    const a = runAt(new Date(T0), { suffix: "00aa" });
    const b = runAt(new Date(T0 + DAY), { suffix: "00bb", state: "succeeded" });
    // A run.json of the first version: only what the index needs is read from it.
    await store.put(keys.run(a.runId), JSON.stringify({ ...a, v: 1, plan: { policy: a.plan.policy, totalItems: 10, totalWeight: 10, shards: [] } }));
    await store.put(keys.run(b.runId), JSON.stringify(b));
    const garbage = "20260103-120000-echo-0bad";
    await store.put(keys.run(garbage), "{\"v\":2,");
    const orphan = "20260104-120000-echo-0000";
    await store.put(keys.items(orphan, 0), "left by a plan that died");
    const list = await listRuns(store);
    expect(list.map((r) => [r.runId, r.state])).toEqual([
      [garbage, "unreadable"],
      [b.runId, "succeeded"],
      [a.runId, "planned"],
    ]);
    expect(list[0]).toMatchObject({ object: keys.run(garbage), reason: expect.stringMatching(/^run\.json: /) });
    expect(await allKeys(store, "index/")).toEqual(expect.arrayContaining([keys.runIndexComplete(), indexKey(a.runId, a.createdAt), indexKey(b.runId, b.createdAt)]));
    // Another process lists: the marker says the index is complete, runs/ is not listed again.
    const other = wrapStore(store);
    await listRuns(other);
    expect(other.calls.list).not.toContain(keys.runsPrefix());
  });

  it("backfill keeps an entry written meanwhile (create-only)", async () => {
    const store = new MemoryStore();
    const run = runAt(new Date(T0), { state: "running" });
    await store.put(keys.run(run.runId), JSON.stringify({ ...run, state: "planned" }));
    await recordRunState(store, run);
    expect(await backfillIndex(store)).toBe(0);
    expect((await listRuns(store))[0]!.state).toBe("running");
  });
});

describe("planned runs in the index", () => {
  it("a committed plan is listed as planned with its items; the entry is rewritten by recordRunState", async () => {
    const store = tempStore();
    const run = await planRun(planOptions(store, { args: { count: 25 } }));
    expect(await listRuns(store)).toEqual([{ runId: run.runId, job: "numbered", state: "planned", createdAt: run.createdAt, items: 25, trigger: "test" }]);
    await recordRunState(store, { ...run, state: "running" });
    expect((await listRuns(store))[0]!.state).toBe("running");
  });

  it("writeIndexEntry refuses metadata Cloud Storage would refuse", async () => {
    const store = new MemoryStore();
    const run = runAt(new Date(T0), { trigger: "x".repeat(10_000) });
    // Triggers are cut to 256 characters for the metadata; the body keeps them whole.
    await writeIndexEntry(store, { runId: run.runId, job: "echo", state: "planned", createdAt: run.createdAt, items: 1, trigger: run.trigger });
    const obj = await store.get(indexKey(run.runId, run.createdAt));
    expect(obj!.metadata.trigger).toHaveLength(256);
  });
});

describe("live markers", () => {
  it("mark a run while it is driven, for reconcile to list", async () => {
    const store = tempStore();
    const a = "20260101-120000-echo-000a";
    const b = "20260101-120000-echo-000b";
    await markLive(store, a);
    await markLive(store, b);
    expect((await liveRuns(store)).sort()).toEqual([a, b]);
    await clearLive(store, a);
    expect(await liveRuns(store)).toEqual([b]);
  });

  it("stay while the run is live again (a rerun started it and found the marker in place)", async () => {
    const store = tempStore();
    const run = runAt(new Date(T0), { state: "running" });
    await store.put(keys.run(run.runId), JSON.stringify(run));
    await markLive(store, run.runId);
    await clearLive(store, run.runId);
    expect(await liveRuns(store)).toEqual([run.runId]);
    await store.put(keys.run(run.runId), JSON.stringify({ ...run, state: "succeeded" }));
    await clearLive(store, run.runId);
    expect(await liveRuns(store)).toEqual([]);
  });
});

describe("removeStalePlans", () => {
  it("removes what a planner that died left, entry included, and leaves a live planner alone", async () => {
    const store = tempStore();
    const now = new Date(T0 + 3600_000);
    const dead = runAt(new Date(T0), { suffix: "dead" });
    const live = runAt(new Date(T0 + 10_000), { suffix: "1ive" });
    for (const [r, beat] of [[dead, T0], [live, now.getTime() - 5_000]] as const) {
      await writeIndexEntry(store, { runId: r.runId, job: "echo", state: "planning", createdAt: r.createdAt, items: 0, trigger: "api" }, { heartbeatAt: new Date(beat).toISOString() });
    }
    await store.put(keys.items(dead.runId, 0), "half a plan");
    await store.put(keys.items(dead.runId, 100), "more of it");
    expect(await removeStalePlans(store, { now })).toEqual([dead.runId]);
    expect(await allKeys(store, "runs/")).toEqual([]);
    expect((await listRuns(store)).map((r) => [r.runId, r.state])).toEqual([[live.runId, "planning"]]);
  });

  it("fixes the entry of a plan that committed but died before it updated its entry", async () => {
    const store = tempStore();
    const run = runAt(new Date(T0), { items: 42 });
    await writeIndexEntry(store, { runId: run.runId, job: "echo", state: "planning", createdAt: run.createdAt, items: 0, trigger: "cli" }, { heartbeatAt: run.createdAt });
    await store.put(keys.run(run.runId), JSON.stringify(run));
    expect(await removeStalePlans(store, { now: new Date(T0 + 3600_000) })).toEqual([run.runId]);
    expect(await listRuns(store)).toEqual([expect.objectContaining({ runId: run.runId, state: "planned", items: 42 })]);
    expect(await store.get(keys.run(run.runId))).not.toBeNull();
  });
});
