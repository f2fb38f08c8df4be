/** Plans a run of a fixture job straight into a store and starts worker processes on it by hand. */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ENV } from "../../src/config/env.js";
import { prepareJob, resolveJob } from "../../src/config/jobs.js";
import { keys } from "../../src/core/keys.js";
import { Checkpoint, type LaunchRecord, type RunRecord } from "../../src/core/model.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson, putJson } from "../../src/store/json.js";
import { ROOT } from "./helpers.js";

const WORKER = join(ROOT, "dist", "src", "worker", "main.js");
export const EXECUTION = "shardrun-test-zz000";

export interface Harness {
  store: FsObjectStore;
  storeDir: string;
  run: RunRecord;
  shard: string;
  readCp: () => Promise<Checkpoint | null>;
}

/** One shard holding every item, one static task. */
export async function planSingleShard(jobPath: string, args: Record<string, string>, storeDir: string): Promise<Harness> {
  const store = new FsObjectStore(storeDir);
  const resolved = resolveJob(jobPath, ROOT);
  const { job, module, version, key, bundle } = await prepareJob(resolved);
  const run = await planRun({
    store,
    job,
    module,
    version,
    bundle: { key, bytes: bundle.bytes },
    args,
    policy: { itemsPerShard: 1_000_000 },
    settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 3600, maxRetries: 3, maxLaunches: 1, tasks: 1 },
    trigger: "test",
  });
  const shard = "s000000";
  const launch: LaunchRecord = {
    v: 2,
    runId: run.runId,
    n: 0,
    createdAt: new Date().toISOString(),
    launcher: "local",
    taskCount: 1,
    parallelism: 1,
    taskTimeoutSeconds: 3600,
    maxRetries: 3,
    shards: [[0, 1]],
    progressMs: 200,
    leaseTtlMs: 30_000,
    execution: EXECUTION,
    state: "running",
  };
  await putJson(store, keys.launch(run.runId, 0), launch, { ifGenerationMatch: 0 });
  const cpKey = keys.checkpoint(run.runId, shard);
  return { store, storeDir, run, shard, readCp: async () => (await getJson(store, cpKey, Checkpoint))?.value ?? null };
}

export function startWorker(h: Harness, attempt: number, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [WORKER], {
    env: {
      ...process.env,
      [ENV.execution]: EXECUTION,
      [ENV.taskIndex]: "0",
      [ENV.taskCount]: "1",
      [ENV.taskAttempt]: String(attempt),
      [ENV.store]: h.storeDir,
      [ENV.run]: h.run.runId,
      [ENV.launch]: "0",
      [ENV.logFormat]: "json",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return { child, exited, log: () => log };
}
