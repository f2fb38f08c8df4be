/**
 * A task's first act (DESIGN.md protocol 6): make sure its execution is the one that works its
 * launch. The launch's claim names that execution; a task whose starter has not written it yet
 * (it died after starting the execution, or lost the launcher's answer) writes it itself. A task
 * of any other execution (a duplicate, or one that started after its launch was given up) does
 * nothing, so a launch is worked by one execution at most.
 */
import { keys } from "../core/keys.js";
import { LaunchClaim, sameExecution } from "../core/model.js";
import { createOrRead, getJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";

export interface TaskIdentity {
  /** CLOUD_RUN_JOB */
  job: string;
  /** CLOUD_RUN_EXECUTION: the execution's id, without its job's path. */
  execution: string;
}

/** Null when this task's execution works the launch; otherwise why the task must do nothing. */
export async function checkLaunchClaim(store: ObjectStore, runId: string, n: number, me: TaskIdentity): Promise<string | null> {
  const key = keys.launchClaim(runId, n);
  // Read first: the starter has usually claimed it already, and a read is not a write.
  let claim = (await getJson(store, key, LaunchClaim))?.value;
  if (!claim) {
    // Cloud Run's relative name: the launcher that reads it back knows the project and region.
    const mine: LaunchClaim = { v: 1, execution: `jobs/${me.job}/executions/${me.execution}`, by: "task", at: new Date().toISOString() };
    claim = (await createOrRead(store, key, mine, LaunchClaim)).value;
  }
  if (claim.execution === null) return `launch ${n} of run ${runId} was given up before an execution claimed it: this task (execution ${me.execution}) does nothing`;
  if (!sameExecution(claim.execution, me.execution)) return `launch ${n} of run ${runId} is worked by execution ${claim.execution}: this task (execution ${me.execution}) does nothing`;
  return null;
}
