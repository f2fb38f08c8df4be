/**
 * Operations on a run besides driving it: refusing a rerun while a launch is live (after asking
 * the launcher whether it still is), cancelling, raising budgets, checking the job's version.
 */
import { putRunRecord } from "./run-record.js";
import type { Budget } from "../core/budget.js";
import { PreconditionFailed, UsageError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import type { RunRecord } from "../core/model.js";
import type { Launcher } from "../launcher/port.js";
import { isTerminal } from "../launcher/port.js";
import { putJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { claimLaunch, LAUNCH_START_GRACE_MS, recordLaunchEnd } from "./launch.js";
import { mergeRunBudget } from "./plan.js";
import { readLaunches, readRun } from "./read.js";

/**
 * Refuses to rerun while a launch of the run is still live. A launch recorded as live whose
 * execution the launcher says ended (or no longer knows: a local supervisor that died, an execution
 * deleted) is recorded as ended first, so a run whose watcher and tasks are gone can go on.
 */
export async function assertNotLive(store: ObjectStore, runId: string, launcher?: Launcher, startingGraceMs = LAUNCH_START_GRACE_MS): Promise<void> {
  for (const l of await readLaunches(store, runId)) {
    if (l.value.state !== "pending" && l.value.state !== "running") continue;
    if (launcher && launcher.kind === l.value.launcher) {
      if (l.value.execution) {
        const ex = await launcher.getExecution(l.value.execution);
        if (!ex || isTerminal(ex.state)) {
          await recordLaunchEnd(store, l, ex?.state ?? "failed");
          continue;
        }
      } else if (Date.now() - Date.parse(l.value.createdAt) >= startingGraceMs) {
        // Unclaimed past the grace: give it up (protocol 6); a late execution of it does nothing.
        const claim = await claimLaunch(store, runId, l.value.n, null, "driver");
        if (claim.execution === null) {
          await recordLaunchEnd(store, l, "failed");
          continue;
        }
      }
    }
    throw new RunLive(runId, l.value.execution ?? `#${l.value.n}`);
  }
}

/** A run has a launch whose execution is still live: it cannot be rerun now. */
export class RunLive extends UsageError {
  readonly runId: string;
  /** The live launch: its execution, or `#n` while none has claimed it. */
  readonly launch: string;
  constructor(runId: string, launch: string) {
    super(`run ${runId} has a live launch (${launch}): wait for it, watch it (shardrun watch ${runId}) or cancel it (shardrun cancel ${runId})`);
    this.runId = runId;
    this.launch = launch;
  }
}

/** Lays new run-level budget limits over the run's (a rerun that raises the budget). */
export async function setRunBudget(store: ObjectStore, runId: string, budget: Budget): Promise<void> {
  for (let tries = 0; tries < 5; tries++) {
    const run = await readRun(store, runId);
    const next: RunRecord = { ...run.value, settings: { ...run.value.settings, budgets: mergeRunBudget(run.value.settings.budgets, budget) } };
    try {
      await putRunRecord(store, run, next);
      return;
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
  }
  throw new Error(`run ${runId}: could not record the new budget (run.json keeps changing)`);
}
