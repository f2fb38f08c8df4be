/**
 * `runs` and reconcile over a store of 10,000 runs on the simulated Cloud Storage: 10,000
 * finished runs over 100 days (each its run.json and its runs-index entry, as the driver leaves
 * them), and one planned run, live. Timed on the simulated clock with the bucket's latencies: the CLI's
 * `runs` listing, the runs index's listing (GET /v1/runs), and one reconcile. The store is built
 * with the clock sped up and timed with it at real speed: a sped-up clock would multiply the
 * process's own CPU time (parsing 10,000 entries) by K as well.
 */
import { z } from "zod";
import { defineJob, type Job } from "../src/core/job.js";
import { newRunId } from "../src/core/ids.js";
import { keys } from "../src/core/keys.js";
import type { RunRecord } from "../src/core/model.js";
import { seededRandom, sleep, type Clock } from "../src/core/time.js";
import { SimLauncher } from "../src/launcher/sim.js";
import { planRun } from "../src/orchestrator/plan.js";
import { listRunSummaries } from "../src/orchestrator/run-list.js";
import { reconcile } from "../src/orchestrator/reconcile.js";
import { entryOf, listRuns as listRunsIndexed, writeIndexEntry } from "../src/orchestrator/runs-index.js";
import { putJson } from "../src/store/json.js";
import { SimBucket, SimObjectStore } from "../src/store/sim.js";
import { fixed, table } from "./lib.js";
import { countingStore, total } from "./scale-lib.js";

const RUNS = 10_000;
const DAYS = 100;
/** Fast: building the store is not what is measured (its writes pace themselves under the bucket's rate). */
const K = 50;

/** A clock whose speed-up can change, continuous across the change. */
function switchableClock(k: number): Clock & { setSpeed(k: number): void } {
  let speed = k;
  let realBase = performance.now();
  let simBase = Date.now();
  const now = () => simBase + (performance.now() - realBase) * speed;
  return {
    now,
    sleep: (ms: number, signal?: AbortSignal) => sleep(ms / speed, signal),
    setSpeed(next: number) {
      simBase = now();
      realBase = performance.now();
      speed = next;
    },
  };
}

export interface RunsResult {
  runs: number;
  listCliMs: number;
  listCliRequests: number;
  listIndexMs: number;
  listIndexRequests: number;
  reconcileMs: number;
  reconcileRequests: number;
  reconcileChecked: number;
}

export async function runsBench(log: (s: string) => void): Promise<RunsResult> {
  const clock = switchableClock(K);
  const bucket = new SimBucket({ clock, seed: 99 });
  const store = new SimObjectStore({ bucket, prefix: "shardrun" });
  const job = defineJob({ name: "tiny", item: z.object({ n: z.number() }), source: () => [{ n: 1 }], run: async (item) => item }) as unknown as Job;
  // One real plan gives a run.json to copy; the others differ in id, time and state.
  const template = await planRun({ store, job, module: "bench/tiny", version: "0", args: {}, settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 3600, maxRetries: 3, maxLaunches: 5 }, trigger: "bench", now: new Date(clock.now()) });
  const random = seededRandom(5);
  const day0 = Date.parse("2026-08-01T00:00:00Z");
  const queue = Array.from({ length: RUNS }, (_, i) => i);
  const writeOne = async (i: number) => {
    const created = new Date(day0 + Math.floor((i / RUNS) * DAYS) * 86_400_000 + Math.floor(random() * 86_000_000));
    const runId = newRunId("tiny", created, random);
    const run: RunRecord = { ...template, runId, createdAt: created.toISOString(), updatedAt: created.toISOString(), state: "succeeded", finishedAt: new Date(created.getTime() + 60_000).toISOString() };
    await putJson(store, keys.run(runId), run, { ifGenerationMatch: 0 });
    await writeIndexEntry(store, entryOf(run));
  };
  // 100 writers at once: the bucket's write rate (1,000/s at first) paces them, with 429s retried.
  await Promise.all(Array.from({ length: 100 }, async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) await writeOne(i);
  }));

  clock.setSpeed(1);
  const timed = async <T>(fn: (s: SimObjectStore) => Promise<T>) => {
    const c = countingStore(new SimObjectStore({ bucket, prefix: "shardrun" }));
    const t0 = clock.now();
    const value = await fn(c.store as SimObjectStore);
    return { ms: clock.now() - t0, requests: total(c.counts), value };
  };
  const cli = await timed((s) => listRunSummaries(s, { limit: 50 }));
  const indexed = await timed((s) => listRunsIndexed(s, { limit: 50 }));
  const launcher = new SimLauncher({ store, clock, job });
  const rec = await timed((s) => reconcile({ store: s, launcher }));
  log(`runs and reconcile over a store of ${RUNS + 1} runs (${DAYS} days; simulated Cloud Storage latencies, built at K = ${K}, timed at K = 1)\n`);
  log(
    table(
      ["call", "simulated time", "requests", "result"],
      [
        ["`shardrun runs` (newest 50, runs index with summaries)", `${fixed(cli.ms, 0)} ms`, cli.requests, `${cli.value.length} runs`],
        ["GET /v1/runs (newest 50, runs index)", `${fixed(indexed.ms, 0)} ms`, indexed.requests, `${indexed.value.length} runs`],
        ["reconcile", `${fixed(rec.ms, 0)} ms`, rec.requests, `${rec.value.checked} runs in flight`],
      ],
    ),
  );
  log("\n");
  return {
    runs: RUNS + 1,
    listCliMs: cli.ms,
    listCliRequests: cli.requests,
    listIndexMs: indexed.ms,
    listIndexRequests: indexed.requests,
    reconcileMs: rec.ms,
    reconcileRequests: rec.requests,
    reconcileChecked: rec.value.checked,
  };
}
