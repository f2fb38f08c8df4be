/**
 * Lists of runs as the CLI (`shardrun runs`), the API (`GET /v1/runs`) and the dashboard show
 * them: from the runs index (runs-index.ts), so a list costs a few listings whatever the number
 * of runs, in the shown state words of core/states.ts, newest first by creation time. A run
 * whose records cannot be read is listed as `unreadable`, with the reason and the object.
 */
import { recordedState, shownState, type ListedState } from "../core/states.js";
import type { ObjectStore } from "../store/port.js";
import { listRuns, type ListRunsOptions, type RunListEntry } from "./runs-index.js";

/** A run in a list. */
export interface RunSummary {
  runId: string;
  job: string;
  state: ListedState;
  createdAt: string;
  /** When its last drive ended (absent while it is live). */
  finishedAt?: string;
  items: number;
  /** Failed items, once the run has finished. */
  failed?: number;
  trigger: string;
  /** Unreadable runs: why. */
  reason?: string;
  /** Unreadable runs: the object that could not be read. */
  object?: string;
}

export interface RunListOptions extends Omit<ListRunsOptions, "state"> {
  /** Only runs in this shown state (`pending` finds runs recorded as planned). */
  state?: ListedState;
}

/** `20261122-020000-<job>-ab12` -> the job, without reading the run. */
export const jobOfRunId = (runId: string): string => runId.slice(16, -5);

export function summaryOf(e: RunListEntry): RunSummary {
  if (e.state === "unreadable") {
    return { runId: e.runId, job: jobOfRunId(e.runId), state: "unreadable", createdAt: e.createdAt, items: 0, trigger: "", reason: e.reason, object: e.object };
  }
  return {
    runId: e.runId,
    job: e.job,
    state: shownState(e.state),
    createdAt: e.createdAt,
    ...(e.finishedAt ? { finishedAt: e.finishedAt } : {}),
    items: e.items,
    ...(e.failed !== undefined ? { failed: e.failed } : {}),
    trigger: e.trigger,
  };
}

/** Runs newest first by creation time, filtered; never fails for one unreadable run. */
export async function listRunSummaries(store: ObjectStore, o: RunListOptions = {}): Promise<RunSummary[]> {
  const { state, ...rest } = o;
  const entries = await listRuns(store, { ...rest, ...(state !== undefined ? { state: recordedState(state) } : {}) });
  return entries.map(summaryOf);
}
