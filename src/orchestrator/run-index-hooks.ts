/**
 * What the driver tells the runs index (runs-index.ts): a run's state on every change, and
 * whether it is live (being driven), so that `runs` and reconcile read the index, not every run.
 */
import type { RunRecord } from "../core/model.js";
import type { ObjectStore } from "../store/port.js";
import { clearLive, markLive as addLive, recordRunState as writeState } from "./runs-index.js";

export async function recordRunState(store: ObjectStore, run: RunRecord, o: { failed?: number } = {}): Promise<void> {
  // The index is a listing aid: run.json stays the truth, so a failed index write is not fatal.
  await writeState(store, run, o).catch(() => undefined);
}

export async function markLive(store: ObjectStore, runId: string, live: boolean): Promise<void> {
  await (live ? addLive(store, runId) : clearLive(store, runId)).catch(() => undefined);
}
