/**
 * Driving a run to its end: watch the live launch, and when it ends with shards unfinished
 * (a task exhausted its retries), launch again for what is left, up to `maxLaunches`. Then
 * finish the run: final state, dead letter, orphan parts cleaned. The CLI and the scheduler
 * service both use this.
 */
import { addUsage, describeBudget, exhausted, ZERO_USAGE, type Usage } from "../core/budget.js";
import { PreconditionFailed, isShardrunError } from "../core/errors.js";
import { sleep } from "../core/time.js";
import { keys } from "../core/keys.js";
import type { Logger } from "../core/log.js";
import { silentLogger } from "../core/log.js";
import type { BudgetLedger, Checkpoint, LaunchRecord, RunRecord } from "../core/model.js";
import { failedItems, finishedState, toleranceExceeded, type RunStatus } from "../core/status.js";
import type { ExecutionStatus, Launcher } from "../launcher/port.js";
import { isTerminal } from "../launcher/port.js";
import { putJson, type Versioned } from "../store/json.js";
import { listAll, type ObjectStore } from "../store/port.js";
import { claimLaunch, LAUNCH_START_GRACE_MS, readLaunchClaim, recordLaunchEnd, startLaunch } from "./launch.js";
import { readCheckpoints, readLaunches, readRun, readRunStatus } from "./read.js";
import { putRunRecord } from "./run-record.js";

export interface DriveOptions {
  store: ObjectStore;
  launcher: Launcher;
  runId: string;
  /** Launches this call may start, the first included. @default 5 */
  maxLaunches?: number;
  /** Only these shards (a rerun of failed items); default: every shard not done. */
  shards?: string[];
  taskCount?: number;
  parallelism?: number;
  /** @default 500 */
  pollMs?: number;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (status: RunStatus, execution: ExecutionStatus | null) => void;
}

/** A poll interval that ends early, without an error, when the caller stops watching. */
const pause = (ms: number, signal?: AbortSignal) => sleep(ms, signal).catch(() => undefined);

export async function driveRun(o: DriveOptions): Promise<RunStatus> {
  const pollMs = o.pollMs ?? 500;
  await startDriving(o.store, o.runId);
  for (;;) {
    const step = await advanceRun(o);
    if (step.kind === "finished") return step.status;
    if (o.signal?.aborted) return readRunStatus(o.store, o.runId, o.launcher);
    if (step.kind === "live") {
      o.onProgress?.(step.status, step.execution);
      await pause(pollMs, o.signal);
    }
  }
}

/**
 * Marks a run as being driven from now on (a run, or a rerun): state "running", and the launch
 * limit counts launches from here.
 */
export async function startDriving(store: ObjectStore, runId: string): Promise<void> {
  const run = await readRun(store, runId);
  const launches = await readLaunches(store, runId);
  const base = launches.length ? Math.max(...launches.map((l) => l.value.n)) + 1 : 0;
  if (run.value.state === "running" && run.value.launchBase !== undefined) return;
  await setRunState(store, run, "running", undefined, undefined, base);
}

export type AdvanceResult =
  | { kind: "live"; status: RunStatus; execution: ExecutionStatus | null }
  | { kind: "launched"; launch: number }
  | { kind: "finished"; status: RunStatus };

export type AdvanceOptions = Omit<DriveOptions, "pollMs" | "signal" | "onProgress"> & {
  /**
   * How long a launch that no execution has claimed counts as being started (protocol 6).
   * @default LAUNCH_START_GRACE_MS (10 minutes)
   */
  startingGraceMs?: number;
};

/**
 * One step of driving a run, without waiting: looks at the live launch (if it ended, records
 * that), then finishes the run, or launches a continuation for the shards still open, within
 * the run's launch limit. The CLI loops over it; the scheduler's reconcile calls it for every
 * run in flight. Two callers at once are safe: launches are created create-only and the run's
 * state changes by compare-and-swap.
 */
export async function advanceRun(o: AdvanceOptions): Promise<AdvanceResult> {
  const { store, launcher, runId } = o;
  const logger = o.logger ?? silentLogger;
  const run = await readRun(store, runId);
  const launches = await readLaunches(store, runId);
  const live = launches.find((l) => l.value.state === "pending" || l.value.state === "running");
  if (live) {
    const seen = await checkLaunch(o, live, run.value);
    if (seen.kind === "live") return seen;
    if (seen.kind === "tolerance") {
      logger.warn("failure tolerance exceeded: run stopped", { runId });
      return { kind: "finished", status: await finishRun(store, run, await readCheckpoints(store, run.value), launcher, "gave-up", toleranceReason(run.value)) };
    }
    return advanceRun(o); // the launch just ended: decide with fresh records
  }
  if (run.value.state !== "running" && run.value.state !== "planned") {
    return { kind: "finished", status: await readRunStatus(store, runId, launcher) };
  }
  const checkpoints = await readCheckpoints(store, run.value);
  const wanted = new Set(o.shards ?? run.value.plan.shards.map((s) => s.id));
  const open = run.value.plan.shards.filter((s) => wanted.has(s.id) && checkpoints.get(s.id)?.state !== "done").map((s) => s.id);
  if (open.length === 0) return { kind: "finished", status: await finishRun(store, run, checkpoints, launcher, "complete") };
  // A budget stop is final until someone raises the budget (rerun --budget-…).
  const budgetStop = budgetStopReason(run.value, checkpoints, open);
  if (budgetStop) return { kind: "finished", status: await finishRun(store, run, checkpoints, launcher, "budget", budgetStop) };
  const n = launches.length ? Math.max(...launches.map((l) => l.value.n)) + 1 : 0;
  const started = n - (run.value.launchBase ?? 0);
  const maxLaunches = o.maxLaunches ?? run.value.settings.maxLaunches;
  if (started >= maxLaunches) {
    logger.warn("giving up: launch limit reached with shards unfinished", { launches: started, open: open.length });
    return {
      kind: "finished",
      status: await finishRun(store, run, checkpoints, launcher, "gave-up", `launch limit reached (${started} launches) with ${open.length} shards unfinished`),
    };
  }
  // No task is alive between launches: reservations restart from what checkpoints report,
  // which also returns what killed tasks had reserved and not spent.
  if (run.value.settings.budgets.run) await putJson(store, keys.budget(runId), { reserved: totalUsage(checkpoints) } satisfies BudgetLedger);
  const s = run.value.settings;
  try {
    const launch = await startLaunch({
      store,
      launcher,
      run: run.value,
      n,
      shards: open,
      taskCount: o.taskCount ?? s.tasks,
      parallelism: o.parallelism ?? s.parallelism,
      taskTimeoutSeconds: s.taskTimeoutSeconds,
      maxRetries: s.maxRetries,
    });
    logger.info("launched", { runId, launch: n, execution: launch.value.execution, tasks: launch.value.taskCount, shards: open.length });
  } catch (e) {
    // Another driver (a second reconcile) is starting launch n right now: theirs it is.
    if (!isShardrunError(e, "PRECONDITION_FAILED")) throw e;
    logger.info("launch already being started elsewhere", { runId, launch: n });
  }
  return { kind: "launched", launch: n };
}

/** Why open shards stopped for a budget, or null. Also catches a run budget already spent. */
function budgetStopReason(run: RunRecord, checkpoints: Map<string, Checkpoint | null>, open: string[]): string | null {
  for (const id of open) {
    const cp = checkpoints.get(id);
    if (cp?.stop === "budget") {
      // A raised budget (rerun --budget-…) makes an old stop marker stale.
      const spent = totalUsage(checkpoints);
      if (exhausted(run.settings.budgets.run, spent, Date.now() - Date.parse(run.createdAt))) return cp.stopReason ?? "budget exhausted";
      if (exhausted(run.settings.budgets.shard, cp.usage, cp.elapsedMs)) return cp.stopReason ?? "shard budget exhausted";
    }
  }
  const spent = totalUsage(checkpoints);
  const kind = exhausted(run.settings.budgets.run, spent, Date.now() - Date.parse(run.createdAt));
  return kind ? `${describeBudget(kind, run.settings.budgets.run!, "run")} (spent ${spent.tokens} tokens, $${spent.usd})` : null;
}

export function totalUsage(checkpoints: Map<string, Checkpoint | null>): Usage {
  let u: Usage = ZERO_USAGE;
  for (const cp of checkpoints.values()) if (cp) u = addUsage(u, cp.usage);
  return u;
}

function toleranceReason(run: RunRecord): string {
  const t = run.settings.maxFailedItems;
  return `failure tolerance exceeded: more than ${t?.count !== undefined ? `${t.count} items` : `${t?.percent}% of items`} failed`;
}

/** One look at a live launch: still live, ended (recorded), or over the failure tolerance. */
async function checkLaunch(
  o: AdvanceOptions,
  launch: Versioned<LaunchRecord>,
  run: RunRecord,
): Promise<{ kind: "live"; status: RunStatus; execution: ExecutionStatus | null } | { kind: "ended" } | { kind: "tolerance" }> {
  if (!launch.value.execution) {
    // No execution has claimed the launch (readLaunches takes a claimed one from the claim).
    // Its starter may be calling the launcher right now, or have died after starting it, whose
    // tasks have yet to claim it: inside the grace it counts as starting, and nothing new is
    // launched. Past the grace it is given up; a late execution's tasks then do nothing.
    const young = Date.now() - Date.parse(launch.value.createdAt) < (o.startingGraceMs ?? LAUNCH_START_GRACE_MS);
    if (young && (await readLaunchClaim(o.store, run.runId, launch.value.n)) === null) {
      return { kind: "live", status: await readRunStatus(o.store, o.runId, o.launcher), execution: null };
    }
    const claim = await claimLaunch(o.store, run.runId, launch.value.n, null, "driver");
    if (claim.execution === null) {
      await recordLaunchEnd(o.store, launch, "failed");
      return { kind: "ended" };
    }
    launch = { ...launch, value: { ...launch.value, execution: claim.execution, state: "running" } };
  }
  if (launch.value.launcher !== o.launcher.kind) {
    // Started by another kind of launcher (a local run read with a cloud launcher, say): only
    // that launcher can tell, so leave it be.
    return { kind: "live", status: await readRunStatus(o.store, o.runId), execution: null };
  }
  const ex = launch.value.execution ? await o.launcher.getExecution(launch.value.execution) : null;
  // The launcher was just asked about the live launch: put that answer in the status rather
  // than ask again (on Cloud Run, a GetExecution and a ListTasks per poll).
  const status = await readRunStatus(o.store, o.runId);
  if (ex) {
    status.launches = status.launches.map((l) =>
      l.n === launch.value.n
        ? { ...l, state: ex.state, tasks: { running: ex.running, succeeded: ex.succeeded, failed: ex.failed }, ...(ex.url ? { url: ex.url } : {}) }
        : l,
    );
  }
  if (toleranceExceeded(run.settings.maxFailedItems, status.items.failed, status.items.total)) {
    // Fail fast: stop paying for items once the run cannot meet its tolerance.
    if (ex && !isTerminal(ex.state)) await o.launcher.cancel(ex.name);
    await recordLaunchEnd(o.store, launch, "cancelled");
    return { kind: "tolerance" };
  }
  if (!ex || isTerminal(ex.state)) {
    await recordLaunchEnd(o.store, launch, ex?.state ?? "failed");
    return { kind: "ended" };
  }
  return { kind: "live", status, execution: ex };
}

export async function setRunState(
  store: ObjectStore,
  run: Versioned<RunRecord>,
  state: RunRecord["state"],
  finishedAt?: string,
  reason?: string,
  launchBase?: number,
): Promise<Versioned<RunRecord>> {
  let current = run;
  for (let tries = 0; tries < 5; tries++) {
    if (current.value.state === state && !finishedAt && launchBase === undefined) return current;
    const { finishedAt: _drop, reason: _old, ...rest } = current.value;
    const next: RunRecord = {
      ...rest,
      state,
      ...(finishedAt ? { finishedAt } : {}),
      ...(reason ? { reason } : {}),
      ...(launchBase !== undefined ? { launchBase } : {}),
    };
    try {
      return { value: next, generation: await putRunRecord(store, current, next) };
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
      current = await readRun(store, run.value.runId);
    }
  }
  throw new Error(`run ${run.value.runId}: could not record state ${state} (run.json keeps changing)`);
}

async function finishRun(
  store: ObjectStore,
  run: Versioned<RunRecord>,
  checkpoints: Map<string, Checkpoint | null>,
  launcher: Launcher,
  how: "complete" | "gave-up" | "budget",
  reason?: string,
): Promise<RunStatus> {
  const failed = failedItems(run.value, checkpoints);
  const succeeded = [...checkpoints.values()].reduce((n, cp) => n + (cp ? cp.done.reduce((m, [a, b]) => m + b - a, 0) : 0), 0);
  const state = how === "gave-up" ? "failed" : how === "budget" ? "budget_exhausted" : finishedState(succeeded, failed.length);
  // The dead letter is derived from the checkpoints: rewriting it is always safe. Conditioned on
  // what is there, so that a store adapter may retry the write.
  const deadKey = keys.deadLetter(run.value.runId);
  const body = failed.map((f) => JSON.stringify(f)).join("\n") + (failed.length ? "\n" : "");
  for (let tries = 0; ; tries++) {
    const current = await store.get(deadKey);
    try {
      await store.put(deadKey, body, { contentType: "application/x-ndjson", ifGenerationMatch: current?.generation ?? 0 });
      break;
    } catch (e) {
      if (!(e instanceof PreconditionFailed) || tries >= 4) throw e;
    }
  }
  await cleanOrphans(store, run.value, checkpoints);
  await setRunState(store, run, state, new Date().toISOString(), reason);
  return readRunStatus(store, run.value.runId, launcher);
}

/** Deletes output parts that no final checkpoint names (written by attempts that lost their lease or died). */
export async function cleanOrphans(store: ObjectStore, run: RunRecord, checkpoints: Map<string, Checkpoint | null>): Promise<number> {
  let removed = 0;
  for (const shard of run.plan.shards) {
    const named = new Set((checkpoints.get(shard.id)?.parts ?? []).map((p) => keys.part(run.runId, shard.id, p.name)));
    for await (const key of listAll(store, keys.partsPrefix(run.runId, shard.id))) {
      if (named.has(key)) continue;
      // Parts are written once, so the generation read is the one to delete (and retryable).
      const part = await store.get(key);
      if (!part) continue;
      try {
        if (await store.delete(key, { ifGenerationMatch: part.generation })) removed++;
      } catch (e) {
        if (!(e instanceof PreconditionFailed)) throw e;
      }
    }
  }
  return removed;
}
