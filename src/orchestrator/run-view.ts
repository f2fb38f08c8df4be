/**
 * A run's status for readers that take a run id (`shardrun status`, `GET /v1/runs/{id}`): from
 * run.json when the plan has committed, else from the runs index while the run is `planning`
 * (or was cancelled then), so that a run answered with 202 can be looked at at once.
 */
import { keys } from "../core/keys.js";
import { RunRecord } from "../core/model.js";
import { planningStatus, type RunStatus } from "../core/status.js";
import type { Launcher } from "../launcher/port.js";
import { getJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { assertRunId, statusOf, type StatusOptions } from "./read.js";
import { findIndexEntry } from "./runs-index.js";

/** The run's status, or null when the store has no such run (committed or being planned). */
export async function readRunView(store: ObjectStore, runId: string, launcher?: Launcher, options: StatusOptions = {}): Promise<RunStatus | null> {
  assertRunId(runId);
  const run = await getJson(store, keys.run(runId), RunRecord);
  if (run) return statusOf(store, run.value, launcher, options);
  const found = await findIndexEntry(store, runId);
  const e = found?.entry;
  if (!e || (e.state !== "planning" && e.state !== "cancelled")) return null;
  return planningStatus({ runId: e.runId, job: e.job, state: e.state, createdAt: e.createdAt, items: e.items });
}
