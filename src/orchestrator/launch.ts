/**
 * Starting a launch (DESIGN.md protocol 6). The launch record is written create-only before the
 * launcher is called, so a second call for the same launch number finds it and starts nothing.
 * Which execution works the launch is decided by its claim (`launches/<n>/execution.json`,
 * create-only, first writer wins): the starter writes it as soon as the launcher names the
 * execution, and every task of an execution checks it as its first act, writing it if nobody
 * has. A starter that died or lost the launcher's answer is thus replaced by the launch's own
 * tasks; nothing depends on listing executions (order, delay, retention, or which env the
 * Cloud Run API shows). A claim nobody wrote within the grace is given up (claimed `null`),
 * after which a late execution's tasks do nothing.
 *
 * The launch record itself is written twice: created here, and given its final state and
 * execution at the end (recordLaunchEnd), never twice within a second (Cloud Storage's limit
 * per object name). Until then readers take the execution from the claim (readLaunches).
 */
import { isShardrunError, PreconditionFailed, ShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { launchCadence, pacedWriteGapMs } from "../core/cadence.js";
import { LaunchClaim, LaunchRecord, sameExecution, type RunRecord } from "../core/model.js";
import { rangeAdd, rangeCount } from "../core/ranges.js";
import { sleep } from "../core/time.js";
import { bankCount } from "../worker/budget.js";
import { ENV } from "../config/env.js";
import type { LaunchRequest, Launcher } from "../launcher/port.js";
import { createOrRead, getJson, putJson, type Versioned } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";

export interface LaunchOptions {
  store: ObjectStore;
  launcher: Launcher;
  run: RunRecord;
  n: number;
  /** Shard numbers to launch, in the order tasks should take them. */
  shards: number[];
  /** Items not settled yet in those shards (caps the task count). */
  itemsLeft?: number;
  taskCount: number;
  /** The run budget left (what checkpoints have not spent), shared out over budget banks. */
  budgetLeft?: { tokens?: number; usd?: number };
  parallelism: number;
  taskTimeoutSeconds: number;
  maxRetries: number;
  /** The job name the launcher starts (Cloud Run job); defaults to "shardrun-<job>". */
  jobName?: string;
  now?: () => Date;
}

/**
 * How long a launch whose record has no claimed execution counts as being started: long enough
 * for a slow start of Cloud Run tasks (image pull, capacity), since only the first task to run
 * can claim a launch whose starter died. Past it the launch is given up; a late execution of it
 * then does nothing, so this bounds a stall, not correctness.
 */
export const LAUNCH_START_GRACE_MS = 10 * 60_000;

/**
 * Starts launch `n`, or returns it when it exists: with its execution when one is claimed,
 * without one when the launcher could not tell whether it started (its tasks will claim it).
 * Throws PRECONDITION_FAILED when another process is starting it (or gave it up).
 */
export async function startLaunch(o: LaunchOptions): Promise<Versioned<LaunchRecord>> {
  // Tasks split shards among themselves, so more tasks than shards can help (a long shard is
  // split up); more tasks than items never can.
  const taskCount = Math.max(1, Math.min(o.taskCount, o.itemsLeft ?? Number.MAX_SAFE_INTEGER));
  const key = keys.launch(o.run.runId, o.n);
  const shards = rangeAdd([], o.shards).map(([a, b]) => [a, b] as [number, number]);
  const cadence = launchCadence(o.store.limits, taskCount, undefined, o.run.settings.leaseTtlMs);
  const record: LaunchRecord = {
    v: 2,
    runId: o.run.runId,
    n: o.n,
    createdAt: (o.now?.() ?? new Date()).toISOString(),
    launcher: o.launcher.kind,
    taskCount,
    // A launcher that runs every task of an execution at once (Cloud Run with the job's
    // parallelism unset) says so: the record must not promise fewer at once than will run.
    parallelism: o.launcher.runsAllTasksAtOnce ? taskCount : Math.max(1, Math.min(o.parallelism, taskCount)),
    taskTimeoutSeconds: o.taskTimeoutSeconds,
    maxRetries: o.maxRetries,
    shards: rangeCount(shards) === o.shards.length && isSorted(o.shards) ? shards : o.shards.map((n) => [n, n + 1] as [number, number]),
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
    const claim = existing ? await readLaunchClaim(o.store, o.run.runId, o.n) : null;
    if (existing && claim?.execution) return { value: { ...existing.value, execution: claim.execution, state: "running" }, generation: existing.generation };
    const why = claim ? "was given up before any execution claimed it" : "is being started by another process";
    throw new ShardrunError("PRECONDITION_FAILED", `launch ${o.n} of run ${o.run.runId} ${why}`, { cause: e });
  }
  let execution: string;
  try {
    execution = await o.launcher.launch(launchRequest(o, record));
  } catch (e) {
    // Maybe started: its tasks will claim the launch, or the grace will give it up.
    if (isShardrunError(e, "LAUNCH_UNCERTAIN")) return { value: record, generation };
    // Nothing started: give the launch up now, so that nobody waits out the grace for it.
    await claimLaunch(o.store, o.run.runId, o.n, null, "starter").catch(() => undefined);
    throw e;
  }
  const claim = await claimLaunch(o.store, o.run.runId, o.n, execution, "starter");
  if (claim.execution === null || !sameExecution(claim.execution, execution)) {
    // Another execution of this launch claimed it first (a retried call), or the launch was
    // given up meanwhile: this execution is surplus, and its tasks would do nothing anyway.
    await o.launcher.cancel(execution).catch(() => undefined);
    if (claim.execution === null) throw new ShardrunError("PRECONDITION_FAILED", `launch ${o.n} of run ${o.run.runId} was given up while it started; execution ${execution} was cancelled`);
    execution = claim.execution;
  }
  return { value: { ...record, execution, state: "running" }, generation };
}

/** The launch's claim, or null when nobody has claimed it yet. */
export async function readLaunchClaim(store: ObjectStore, runId: string, n: number): Promise<LaunchClaim | null> {
  return (await getJson(store, keys.launchClaim(runId, n), LaunchClaim))?.value ?? null;
}

/** Claims launch n for `execution` (null: gives it up) unless claimed already; returns the claim that holds. */
export async function claimLaunch(store: ObjectStore, runId: string, n: number, execution: string | null, by: LaunchClaim["by"]): Promise<LaunchClaim> {
  const claim: LaunchClaim = { v: 1, execution, by, at: new Date().toISOString() };
  return (await createOrRead(store, keys.launchClaim(runId, n), claim, LaunchClaim)).value;
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


/**
 * Records the launch's final state (and its execution, taken from the claim until now); a
 * concurrent update (another watcher) wins harmlessly. Never within a second of the record's
 * creation: a launch that ended at once waits out the rest of that second.
 */
export async function recordLaunchEnd(store: ObjectStore, launch: Versioned<LaunchRecord>, state: LaunchRecord["state"], now = new Date()): Promise<void> {
  // Only a store that limits writes per object (Cloud Storage) needs the pause: a folder does not.
  const gap = pacedWriteGapMs(store.limits);
  const wait = Date.parse(launch.value.createdAt) + gap - Date.now();
  if (wait > 0 && wait <= gap) await sleep(wait);
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
