/**
 * Reconcile and cancel against a folder store and an in-memory launcher: what each does to
 * run.json and the launches, and that two reconciles at once start one execution, not two.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Job } from "../../src/core/job.js";
import { keys } from "../../src/core/keys.js";
import { LaunchClaim, RunRecord } from "../../src/core/model.js";
import { defineJob } from "../../src/index.js";
import type { ExecutionState, ExecutionStatus, LaunchRequest, Launcher } from "../../src/launcher/port.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { readLaunches } from "../../src/orchestrator/read.js";
import { cancelRun, reconcile } from "../../src/orchestrator/reconcile.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson, putJson } from "../../src/store/json.js";

class FakeLauncher implements Launcher {
  readonly kind = "local" as const;
  readonly requests: LaunchRequest[] = [];
  readonly states = new Map<string, ExecutionState>();
  readonly cancelled: string[] = [];
  failNext = false;

  async launch(request: LaunchRequest): Promise<string> {
    // Slow enough that two reconciles at once really overlap.
    await new Promise((r) => setTimeout(r, 20));
    if (this.failNext) {
      this.failNext = false;
      throw new Error("quota exceeded");
    }
    const name = `shardrun-${request.runId.slice(16, -5)}-${this.requests.length}`;
    this.requests.push(request);
    this.states.set(name, "running");
    return name;
  }

  async getExecution(name: string): Promise<ExecutionStatus | null> {
    const state = this.states.get(name);
    return state ? { name, state, taskCount: 1, running: 0, succeeded: 0, failed: 0, cancelled: 0, tasks: [] } : null;
  }

  async cancel(name: string): Promise<void> {
    this.cancelled.push(name);
    this.states.set(name, "cancelled");
  }
}

// planRun takes any job: the handle's own type parameters do not matter to it.
const job = defineJob({
  name: "tiny",
  item: z.object({ n: z.number() }),
  source: () => Array.from({ length: 6 }, (_, n) => ({ n })),
  shard: { itemsPerShard: 2 },
  run: (item) => item.n,
}) as unknown as Job;

let store: FsObjectStore;
let launcher: FakeLauncher;

async function plan(): Promise<string> {
  const run = await planRun({
    store,
    job,
    module: "dist/jobs/tiny/index.js",
    version: "0.0.0+test",
    args: {},
    settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 60, maxRetries: 0, maxLaunches: 3 },
    trigger: "test",
  });
  return run.runId;
}

const state = async (runId: string) => (await getJson(store, keys.run(runId), RunRecord))!.value;

beforeEach(() => {
  store = new FsObjectStore(mkdtempSync(join(tmpdir(), "shardrun-reconcile-")));
  launcher = new FakeLauncher();
});

describe("reconcile", () => {
  it("starts a planned run; two reconciles at once start one execution", async () => {
    const runId = await plan();
    // Each with its own `busy`, as two replicas of the service would be.
    const [a, b] = await Promise.all([reconcile({ store, launcher }), reconcile({ store, launcher })]);
    expect(launcher.requests).toHaveLength(1);
    expect((await readLaunches(store, runId)).map((l) => l.value.n)).toEqual([0]);
    // The second one either found the lease held, or came after it and found the launch live.
    expect([...a.runs, ...b.runs].map((r) => r.outcome).sort()).toEqual(["launched", expect.stringMatching(/^(skipped|live)$/)]);
    expect(await store.get(`runs/${runId}/driver.json`)).toBeNull(); // the lease is given back
    expect((await state(runId)).state).toBe("running");
  });

  it("continues a launch that ended with shards open, up to the launch limit, then fails the run", async () => {
    const runId = await plan();
    for (let n = 0; n < 3; n++) {
      const r = await reconcile({ store, launcher });
      expect(r.runs).toEqual([{ runId, outcome: "launched" }]);
      // The execution ends with nothing done (as when every task timed out).
      launcher.states.set([...launcher.states.keys()].at(-1)!, "failed");
    }
    const last = await reconcile({ store, launcher });
    expect(last.runs).toEqual([{ runId, outcome: "finished", state: "failed" }]);
    expect((await state(runId)).reason).toContain("launch limit");
    // A finished run is not looked at again.
    expect((await reconcile({ store, launcher })).checked).toBe(0);
  });

  it("leaves a live launch be, and skips a run this process is advancing already", async () => {
    const runId = await plan();
    await reconcile({ store, launcher });
    expect((await reconcile({ store, launcher })).runs).toEqual([{ runId, outcome: "live", state: "running" }]);
    expect((await reconcile({ store, launcher, busy: new Set([runId]) })).runs).toEqual([{ runId, outcome: "skipped" }]);
    expect(launcher.requests).toHaveLength(1);
  });

  it("reports a run whose launch fails and goes on with the others", async () => {
    const first = await plan();
    launcher.failNext = true;
    const r = await reconcile({ store, launcher, concurrency: 1 });
    expect(r.runs).toEqual([{ runId: first, outcome: "error", error: "quota exceeded" }]);
    // The launcher refused it, so nothing started: the launch was given up at once (its claim
    // says so), and the next reconcile launches again without waiting out the grace.
    expect((await getJson(store, keys.launchClaim(first, 0), LaunchClaim))?.value.execution).toBeNull();
    expect((await reconcile({ store, launcher })).runs).toEqual([{ runId: first, outcome: "launched" }]);
    expect(launcher.requests).toHaveLength(1);
    expect((await readLaunches(store, first)).map((l) => [l.value.n, l.value.state])).toEqual([
      [0, "failed"],
      [1, "running"],
    ]);
  });

  it("leaves a launch that nothing claimed be for the grace (its starter may be mid-call), then gives it up", async () => {
    const first = await plan();
    // A starter wrote launch 0's record and died before the launcher answered: no claim.
    const hung: Launcher = { kind: "local", launch: () => new Promise<string>(() => {}), getExecution: (n) => launcher.getExecution(n), cancel: (n) => launcher.cancel(n) };
    void reconcile({ store, launcher: hung });
    while (!(await readLaunches(store, first)).length) await new Promise((r) => setTimeout(r, 10));
    await putJson(store, `runs/${first}/driver.json`, { holder: "gone", until: 0 });
    expect((await reconcile({ store, launcher })).runs).toEqual([{ runId: first, outcome: "starting" }]);
    expect(launcher.requests).toHaveLength(0);
    expect((await reconcile({ store, launcher, startingGraceMs: 0 })).runs).toEqual([{ runId: first, outcome: "launched" }]);
    expect((await getJson(store, keys.launchClaim(first, 0), LaunchClaim))?.value).toMatchObject({ execution: null, by: "driver" });
    expect((await readLaunches(store, first)).map((l) => [l.value.n, l.value.state])).toEqual([
      [0, "failed"],
      [1, "running"],
    ]);
  });

  it("checks its options", async () => {
    await expect(reconcile({ store, launcher, concurrency: 0 })).rejects.toThrow("Expected `concurrency` to be a number from 1 and up");
  });
});

describe("cancelRun", () => {
  it("marks the run cancelled, cancels its live execution, and stays idempotent", async () => {
    const runId = await plan();
    await reconcile({ store, launcher });
    const execution = [...launcher.states.keys()][0]!;
    expect(await cancelRun({ store, launcher, runId })).toEqual({ kind: "cancelled" });
    expect(launcher.cancelled).toEqual([execution]);
    const rec = await state(runId);
    expect(rec).toMatchObject({ state: "cancelled", reason: "cancelled on request" });
    expect(rec.finishedAt).toBeDefined();
    expect((await readLaunches(store, runId))[0]!.value.state).toBe("cancelled");
    expect(await cancelRun({ store, launcher, runId })).toEqual({ kind: "already-cancelled" });
    // Reconcile neither advances nor relaunches it.
    expect((await reconcile({ store, launcher })).checked).toBe(0);
    expect(launcher.requests).toHaveLength(1);
  });

  it("leaves a finished run as it is", async () => {
    const runId = await plan();
    const run = (await getJson(store, keys.run(runId), RunRecord))!;
    await putJson(store, keys.run(runId), { ...run.value, state: "succeeded", finishedAt: new Date().toISOString() }, { ifGenerationMatch: run.generation });
    expect(await cancelRun({ store, launcher, runId })).toEqual({ kind: "finished", state: "succeeded" });
    expect((await state(runId)).state).toBe("succeeded");
  });

  it("wins over a concurrent change of run.json by compare-and-swap, without losing it", async () => {
    const runId = await plan();
    await reconcile({ store, launcher });
    const both = await Promise.all([cancelRun({ store, launcher, runId }), cancelRun({ store, launcher, runId })]);
    expect(both.map((r) => r.kind).sort()).toEqual(["already-cancelled", "cancelled"]);
    expect((await state(runId)).state).toBe("cancelled");
  });
});
