/**
 * Driving a run to its end: watch the live launch, and when it ends with shards unfinished (a
 * task exhausted its retries), launch again for what is left, up to `maxLaunches`. Then finish
 * the run: final state, dead letter, orphan parts cleaned. The CLI and the scheduler service both
 * use this. Every step reads the run through listings (O(shards / 1,000) requests), and the watch
 * reacts to the launcher's changes rather than polling at a fixed rate.
 */
import { addUsage, describeBudget, exhausted, ZERO_USAGE, type Usage } from "../core/budget.js";
import { checkpointProblems } from "../core/checkpoint.js";
import { PreconditionFailed, isShardrunError } from "../core/errors.js";
import { shardId } from "../core/ids.js";
import { keys } from "../core/keys.js";
import type { Logger } from "../core/log.js";
import { silentLogger } from "../core/log.js";
import type { LaunchRecord, RunRecord } from "../core/model.js";
import { failedItems, finishedState, toleranceExceeded, type RunStatus, type ShardSummary } from "../core/status.js";
import { realClock, type Clock } from "../core/time.js";
import type { ExecutionStatus, Launcher } from "../launcher/port.js";
import { isTerminal } from "../launcher/port.js";
import { putJson, type Versioned } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { claimLaunch, LAUNCH_START_GRACE_MS, readLaunchClaim, recordLaunchEnd, startLaunch } from "./launch.js";
import { bankCount } from "../worker/budget.js";
import { listShards, readCheckpoints, readLaunches, readRun, readShardEntries, statusOf } from "./read.js";
import { markLive, recordRunState } from "./run-index-hooks.js";
import { putRunRecord } from "./run-record.js";

export interface DriveOptions {
  store: ObjectStore;
  launcher: Launcher;
  runId: string;
  /** Launches this call may start, the first included. @default the run's maxLaunches */
  maxLaunches?: number;
  /** Only these shards (a rerun of failed items); default: every shard not done. */
  shards?: string[];
  taskCount?: number;
  parallelism?: number;
  /**
   * Longest wait between two looks at a live run; the launcher's own change notice (a task
   * ended) wakes the driver sooner. Grows with the run's size, so that a status read stays a small
   * share of the store's requests. @default 250
   */
  pollMs?: number;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (status: RunStatus, execution: ExecutionStatus | null) => void;
  /** Do not mark a new drive (watch re-attaches to the drive under way). @default false */
  attach?: boolean;
  /** The clock polls and grace periods run on (the scale simulation runs one faster than real time). */
  clock?: Clock;
}

export async function driveRun(o: DriveOptions): Promise<RunStatus> {
  const basePoll = o.pollMs ?? 250;
  const clock = o.clock ?? realClock;
  if (!o.attach) await startDriving(o.store, o.runId);
  for (;;) {
    const t0 = clock.now();
    const step = await advanceRun(o);
    if (step.kind === "finished") return step.status;
    if (o.signal?.aborted) return readRunStatus(o.store, o.runId, o.launcher);
    if (step.kind === "live") {
      o.onProgress?.(step.status, step.execution);
      // A look costs about a listing per 1,000 shards: look less often at big runs.
      const poll = Math.max(basePoll, (clock.now() - t0) * 4);
      const ex = step.execution?.name;
      if (ex && o.launcher.waitForChange) await o.launcher.waitForChange(ex, poll, o.signal).catch(() => undefined);
      else await clock.sleep(poll, o.signal).catch(() => undefined);
    }
  }
}

export async function readRunStatus(store: ObjectStore, runId: string, launcher?: Launcher): Promise<RunStatus> {
  return statusOf(store, (await readRun(store, runId)).value, launcher);
}

/**
 * Marks a run as being driven from now on (a run, or a rerun): state "running", and the launch
 * limit counts launches from here.
 */
export async function startDriving(store: ObjectStore, runId: string): Promise<void> {
  const run = await readRun(store, runId);
  const launches = await readLaunches(store, runId);
  const base = launches.length ? Math.max(...launches.map((l) => l.value.n)) + 1 : 0;
  // Live first: reconcile looks at live runs only, and this one is about to be driven.
  await markLive(store, runId, true);
  // A new drive (a run, or a rerun; a re-plan of failed items may have set "running" already)
  // counts its launches from here.
  if (run.value.state === "running" && run.value.launchBase === base) return;
  await setRunState(store, run, "running", { launchBase: base });
}

export type AdvanceResult =
  | { kind: "live"; status: RunStatus; execution: ExecutionStatus | null }
  | { kind: "launched"; launch: number }
  | { kind: "finished"; status: RunStatus };

export type AdvanceOptions = Omit<DriveOptions, "pollMs" | "signal" | "onProgress" | "attach"> & {
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
      return { kind: "finished", status: await finishRun(store, run, launcher, "gave-up", toleranceReason(run.value)) };
    }
    return advanceRun(o); // the launch just ended: decide with fresh records
  }
  if (run.value.state !== "running" && run.value.state !== "planned") {
    return { kind: "finished", status: await statusOf(store, run.value, launcher) };
  }
  const listing = await listShards(store, run.value);
  const byN = new Map(listing.summaries.map((s) => [s.n, s]));
  const wanted = o.shards ? new Set(o.shards.map((s) => Number(s.slice(1)))) : null;
  const open: number[] = [];
  let itemsLeft = 0;
  for (let n = 0; n < run.value.plan.shardCount; n++) {
    if (wanted && !wanted.has(n)) continue;
    const s = byN.get(n);
    if (s?.state === "done") continue;
    open.push(n);
    itemsLeft += s ? Math.max(0, s.items - s.done - s.failed) : itemsPerShardGuess(run.value);
  }
  if (open.length === 0) return { kind: "finished", status: await finishRun(store, run, launcher, "complete") };
  // Tasks leave a shard whose checkpoint does not add up alone; launching again would not help.
  const damaged = await damagedCheckpoint(store, run.value, open.filter((n) => byN.has(n)));
  if (damaged) return { kind: "finished", status: await finishRun(store, run, launcher, "gave-up", damaged) };
  const spent = totalUsage(listing.summaries);
  // A budget stop is final until someone raises the budget (rerun --budget-…).
  const lastLaunch = launches.reduce<LaunchRecord | null>((a, l) => (!a || l.value.n > a.n ? l.value : a), null);
  const budgetStop = budgetStopReason(run.value, listing.summaries, spent, (o.clock ?? realClock).now(), lastLaunch);
  if (budgetStop) return { kind: "finished", status: await finishRun(store, run, launcher, "budget", budgetStop) };
  const n = launches.length ? Math.max(...launches.map((l) => l.value.n)) + 1 : 0;
  const started = n - (run.value.launchBase ?? 0);
  const maxLaunches = o.maxLaunches ?? run.value.settings.maxLaunches;
  if (started >= maxLaunches) {
    logger.warn("giving up: launch limit reached with shards unfinished", { launches: started, open: open.length });
    return {
      kind: "finished",
      status: await finishRun(store, run, launcher, "gave-up", `launch limit reached (${started} launches) with ${open.length} shards unfinished`),
    };
  }
  const s = run.value.settings;
  const budget = s.budgets.run;
  try {
    const launch = await startLaunch({
      store,
      launcher,
      run: run.value,
      n,
      shards: open,
      itemsLeft,
      taskCount: o.taskCount ?? s.tasks,
      parallelism: o.parallelism ?? s.parallelism,
      taskTimeoutSeconds: s.taskTimeoutSeconds,
      maxRetries: s.maxRetries,
      ...(budget && (budget.tokens !== undefined || budget.usd !== undefined)
        ? {
            budgetLeft: {
              ...(budget.tokens !== undefined ? { tokens: Math.max(0, budget.tokens - spent.tokens) } : {}),
              ...(budget.usd !== undefined ? { usd: Math.max(0, budget.usd - spent.usd) } : {}),
            },
          }
        : {}),
    });
    logger.info("launched", { runId, launch: n, execution: launch.value.execution, tasks: launch.value.taskCount, shards: open.length });
  } catch (e) {
    // Another driver (a second reconcile) is starting launch n right now: theirs it is.
    if (!isShardrunError(e, "PRECONDITION_FAILED")) throw e;
    logger.info("launch already being started elsewhere", { runId, launch: n });
  }
  return { kind: "launched", launch: n };
}

/** Why the first damaged checkpoint of these shards is damaged, or null. */
async function damagedCheckpoint(store: ObjectStore, run: RunRecord, shards: number[]): Promise<string | null> {
  const cps = await readCheckpoints(store, run.runId, shards.map((n) => shardId(n)));
  for (const [id, cp] of cps) {
    if (!cp) continue;
    const problems = checkpointProblems(cp, cp.itemCount);
    if (problems.length) {
      return `${keys.checkpoint(run.runId, id)} is damaged (${problems[0]}): see \`shardrun verify ${run.runId}\`, then \`shardrun rerun ${run.runId} --repair\``;
    }
  }
  return null;
}

function itemsPerShardGuess(run: RunRecord): number {
  return Math.ceil(run.plan.totalItems / Math.max(1, run.plan.shardCount));
}

/** Why open shards stopped for a budget, or null. Also catches a run budget already spent. */
function budgetStopReason(run: RunRecord, shards: readonly ShardSummary[], spent: Usage, now: number, last: LaunchRecord | null): string | null {
  const kind = exhausted(run.settings.budgets.run, spent, now - Date.parse(run.createdAt));
  if (kind) return `${describeBudget(kind, run.settings.budgets.run!, "run")} (spent ${spent.tokens} tokens, $${spent.usd})`;
  const shardBudget = run.settings.budgets.shard;
  let runStop = false;
  for (const s of shards) {
    if (s.state === "done" || !s.stop) continue;
    const k = exhausted(shardBudget, s.usage);
    if (k) return `${describeBudget(k, shardBudget!, "shard")} (shard ${s.id})`;
    runStop = true;
  }
  // Tasks admit an item only when what is left covers its expected cost, so a run stops a little
  // short of its budget: less than an item's cost may be left in each task's reservation and in
  // each bank. Shards stopped with more than that left were stopped under a smaller budget (a rerun
  // raised it since): then launch again.
  const b = run.settings.budgets.run;
  if (!runStop || !b || !last) return null;
  const items = shards.reduce((a, s) => a + s.done + s.failed, 0);
  const slots = last.taskCount + bankCount(last.taskCount);
  const short = (limit: number | undefined, used: number) => limit !== undefined && items > 0 && limit - used < (used / items) * slots;
  const spentKind = short(b.tokens, spent.tokens) ? "tokens" : short(b.usd, spent.usd) ? "usd" : null;
  if (!spentKind) return null;
  return `${describeBudget(spentKind, b, "run")}: what is left does not cover another item (spent ${spent.tokens} tokens, $${spent.usd})`;
}

export function totalUsage(shards: readonly ShardSummary[]): Usage {
  let u: Usage = ZERO_USAGE;
  for (const s of shards) u = addUsage(u, s.usage);
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
    const young = (o.clock ?? realClock).now() - Date.parse(launch.value.createdAt) < (o.startingGraceMs ?? LAUNCH_START_GRACE_MS);
    if (young && (await readLaunchClaim(o.store, run.runId, launch.value.n)) === null) {
      return { kind: "live", status: await statusOf(o.store, run, o.launcher), execution: null };
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
    return { kind: "live", status: await statusOf(o.store, run), execution: null };
  }
  const ex = launch.value.execution ? await o.launcher.getExecution(launch.value.execution) : null;
  const status = await statusOf(o.store, run);
  if (ex) {
    // The launcher was just asked about the live launch: put that answer in the status rather
    // than ask again (on Cloud Run, a GetExecution and a ListTasks per poll).
    status.launches = status.launches.map((l) =>
      l.n === launch.value.n
        ? {
            ...l,
            state: ex.state,
            tasks: { running: ex.running, succeeded: ex.succeeded, failed: ex.failed },
            taskList: ex.tasks.map((t) => ({ index: t.index, state: t.state, attempts: t.attempts, ...(t.lastExitCode !== undefined ? { lastExitCode: t.lastExitCode } : {}), ...(t.timeouts !== undefined ? { timeouts: t.timeouts } : {}), ...(t.lastExit ? { lastExit: t.lastExit } : {}) })),
            ...(ex.url ? { url: ex.url } : {}),
          }
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

export interface RunStateChange {
  finishedAt?: string;
  reason?: string;
  launchBase?: number;
  /** Failed items, when the caller counted them: the runs index lists them. */
  failed?: number;
}

export async function setRunState(store: ObjectStore, run: Versioned<RunRecord>, state: RunRecord["state"], change: RunStateChange = {}): Promise<Versioned<RunRecord>> {
  let current = run;
  for (let tries = 0; tries < 5; tries++) {
    if (current.value.state === state && !change.finishedAt && change.launchBase === undefined && change.reason === undefined) return current;
    const { finishedAt: oldFinish, reason: _old, ...rest } = current.value;
    const next: RunRecord = {
      ...rest,
      state,
      // A drive that did no work keeps the time the last one that did finished: kept while a
      // rerun drives (status shows it only once the run has finished again).
      ...(change.finishedAt ? { finishedAt: change.finishedAt } : oldFinish ? { finishedAt: oldFinish } : {}),
      ...(change.reason ? { reason: change.reason } : {}),
      ...(change.launchBase !== undefined ? { launchBase: change.launchBase } : {}),
    };
    try {
      const written = { value: next, generation: await putRunRecord(store, current, next) };
      await recordRunState(store, next, change.failed !== undefined ? { failed: change.failed } : {});
      return written;
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
      current = await readRun(store, run.value.runId);
    }
  }
  throw new Error(`run ${run.value.runId}: could not record state ${state} (run.json keeps changing)`);
}

/** Items of `run` that failed, read from the checkpoints of the shards that have failures. */
export async function readFailedItems(store: ObjectStore, run: RunRecord, summaries?: readonly ShardSummary[]) {
  const shards = summaries ?? (await listShards(store, run)).summaries;
  const withFailures = shards.filter((s) => s.failed > 0).map((s) => s.id);
  const [checkpoints, entries] = await Promise.all([
    readCheckpoints(store, run.runId, withFailures),
    run.plan.rounds.length > 1 ? readShardEntries(store, run) : Promise.resolve([]),
  ]);
  return failedItems(run, checkpoints, entries);
}

async function finishRun(
  store: ObjectStore,
  run: Versioned<RunRecord>,
  launcher: Launcher,
  how: "complete" | "gave-up" | "budget",
  reason?: string,
): Promise<RunStatus> {
  // Every part: the finish cleans the orphans.
  const listing = await listShards(store, run.value, { parts: "all" });
  const failed = await readFailedItems(store, run.value, listing.summaries);
  const succeeded = listing.summaries.reduce((n, s) => n + s.done, 0);
  const state = how === "gave-up" ? "failed" : how === "budget" ? "budget_exhausted" : finishedState(succeeded, failed.length);
  // The dead letter is derived from the checkpoints: rewriting it is always safe. Conditioned on
  // what is there, so that a store adapter may retry the write.
  const deadKey = keys.deadLetter(run.value.runId);
  const body = failed.map((f) => JSON.stringify(f)).join("\n") + (failed.length ? "\n" : "");
  for (let tries = 0; ; tries++) {
    const current = await store.get(deadKey);
    if (current && Buffer.from(current.bytes).toString("utf8") === body) break;
    try {
      await store.put(deadKey, body, { contentType: "application/x-ndjson", ifGenerationMatch: current?.generation ?? 0 });
      break;
    } catch (e) {
      if (!(e instanceof PreconditionFailed) || tries >= 4) throw e;
    }
  }
  await deleteOrphans(store, listing.orphans);
  // A drive that launched nothing (a rerun of a finished run) keeps the finish time it had.
  const launches = await readLaunches(store, run.value.runId);
  const workedNow = launches.some((l) => l.value.n >= (run.value.launchBase ?? 0));
  const finishedAt = workedNow || !run.value.finishedAt ? new Date().toISOString() : run.value.finishedAt;
  await setRunState(store, run, state, { finishedAt, failed: failed.length, ...(reason ? { reason } : {}) });
  await markLive(store, run.value.runId, false);
  return statusOf(store, (await readRun(store, run.value.runId)).value, launcher);
}

/** Deletes output parts that no checkpoint names (written by attempts that lost their lease or died). */
export async function deleteOrphans(store: ObjectStore, orphans: readonly string[]): Promise<number> {
  let removed = 0;
  for (const key of orphans) {
    // Parts are written once, so the generation read is the one to delete (and retryable).
    const part = await store.get(key, { range: { start: 0, end: 0 } });
    if (!part) continue;
    try {
      if (await store.delete(key, { ifGenerationMatch: part.generation })) removed++;
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
  }
  return removed;
}

export { shardId };
