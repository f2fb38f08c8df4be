/**
 * Where the driver tells the runs index about state changes. Temporary: the runs index lands on
 * another branch; until then these do nothing.
 */
import type { RunRecord } from "../core/model.js";
import type { ObjectStore } from "../store/port.js";

export async function recordRunState(_store: ObjectStore, _run: RunRecord): Promise<void> {}

export async function markLive(_store: ObjectStore, _runId: string, _live: boolean): Promise<void> {}
