/**
 * Starting a launch (DESIGN.md protocol 6): the launch record is written create-only before the
 * launcher is called, and the execution name recorded after. A second call for the same launch
 * number finds the record and does not start a second execution. A record without an execution
 * name (the process that wrote it died, or lost the launcher's answer) is settled by asking the
 * launcher for an execution carrying the launch's identity, when it can look one up.
 */
import { PreconditionFailed, ShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { launchCadence } from "../core/cadence.js";
import { LaunchRecord, type RunRecord } from "../core/model.js";
import { rangeAdd, rangeCount } from "../core/ranges.js";
import { bankCount } from "../worker/budget.js";
import { ENV } from "../config/env.js";
import type { LaunchRequest, Launcher } from "../launcher/port.js";
import { getJson, putJson, type Versioned } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";

export interface LaunchOptions {
  store: ObjectStore;
  launcher: Launcher;
  run: RunRecord;
  n: number;
  /** Shard numbers to launch, in the order tasks should take them. */
  shards: number[];
  taskCount: number;
  /** The run budget left (what checkpoints have not spent), shared out over budget banks. */
  budgetLeft?: { tokens?: number; usd?: number };
  parallelism: number;
  taskTimeoutSeconds: number;
  maxRetries: number;
  /** Items not settled yet in those shards (caps the task count). */
  itemsLeft?: number;
  /** The job name the launcher starts (Cloud Run job); defaults to "shardrun-<job>". */
  jobName?: string;
  now?: () => Date;
}

export async function startLaunch(o: LaunchOptions): Promise<Versioned<LaunchRecord>> {
  // Tasks split shards among themselves, so more tasks than shards can help (a long shard is
  // split up); more tasks than items never can.
  const shards = rangeAdd([], o.shards).map(([a, b]) => [a, b] as [number, number]);
  const taskCount = Math.max(1, Math.min(o.taskCount, o.itemsLeft ?? Number.MAX_SAFE_INTEGER));
  const key = keys.launch(o.run.runId, o.n);
  const cadence = launchCadence(o.store.limits, taskCount, undefined, o.run.settings.leaseTtlMs);
  const record: LaunchRecord = {
    v: 2,
    runId: o.run.runId,
    n: o.n,
    createdAt: (o.now?.() ?? new Date()).toISOString(),
    launcher: o.launcher.kind,
    taskCount,
    parallelism: Math.max(1, Math.min(o.parallelism, taskCount)),
    taskTimeoutSeconds: o.taskTimeoutSeconds,
    maxRetries: o.maxRetries,
    shards: rangeCount(shards) === o.shards.length && isSorted(o.shards) ? shards : o.shards.map((s) => [s, s + 1] as [number, number]),
    progressMs: cadence.progressMs,
    leaseTtlMs: cadence.leaseTtlMs,
    ...(o.budgetLeft && (o.budgetLeft.tokens !== undefined || o.budgetLeft.usd !== undefined) ? { budget: { ...o.budgetLeft, banks: bankCount(taskCount) } } : {}),
    state: "pending",
  };
  let generation: string;
  try {
    generation = await putJson(o.store, key, record, { ifGenerationMatch: 0 });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
    const existing = await getJson(o.store, key, LaunchRecord);
    if (existing?.value.execution) return existing;
    // Only a launch still pending, and started through this kind of launcher, can be adopted.
    const adoptable = existing?.value.state === "pending" && existing.value.launcher === o.launcher.kind;
    const found = adoptable && o.launcher.findExecution ? await o.launcher.findExecution(launchRequest(o, existing.value)) : null;
    if (existing && found) return recordExecution(o.store, key, existing, found);
    throw new ShardrunError("PRECONDITION_FAILED", `launch ${o.n} of run ${o.run.runId} is being started by another process`, { cause: e });
  }
  const execution = await o.launcher.launch(launchRequest(o, record));
  return recordExecution(o.store, key, { value: record, generation }, execution);
}

function launchRequest(o: LaunchOptions, record: LaunchRecord): LaunchRequest {
  return {
    jobName: o.jobName ?? `shardrun-${o.run.job.name}`,
    runId: o.run.runId,
    launch: record.n,
    taskCount: record.taskCount,
    parallelism: record.parallelism,
    taskTimeoutSeconds: record.taskTimeoutSeconds,
    maxRetries: record.maxRetries,
    env: {
      [ENV.store]: o.store.url,
      [ENV.run]: o.run.runId,
      [ENV.launch]: String(record.n),
      [ENV.deadlineSeconds]: String(record.taskTimeoutSeconds),
    },
  };
}

/** Records the execution on the launch; if another process recorded one first, its record wins. */
async function recordExecution(store: ObjectStore, key: string, launch: Versioned<LaunchRecord>, execution: string): Promise<Versioned<LaunchRecord>> {
  const started: LaunchRecord = { ...launch.value, execution, state: "running" };
  try {
    return { value: started, generation: await putJson(store, key, started, { ifGenerationMatch: launch.generation }) };
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
    const now = await getJson(store, key, LaunchRecord);
    if (now?.value.execution) return now;
    throw e;
  }
}

/** Records the launch's final state; a concurrent update (another watcher) wins harmlessly. */
export async function recordLaunchEnd(store: ObjectStore, launch: Versioned<LaunchRecord>, state: LaunchRecord["state"], now = new Date()): Promise<void> {
  const next: LaunchRecord = { ...launch.value, state, finishedAt: now.toISOString() };
  try {
    await putJson(store, keys.launch(launch.value.runId, launch.value.n), next, { ifGenerationMatch: launch.generation });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
  }
}

function isSorted(a: readonly number[]): boolean {
  for (let k = 1; k < a.length; k++) if (a[k]! <= a[k - 1]!) return false;
  return true;
}
