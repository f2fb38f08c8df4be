/**
 * Writing run.json after its creation. Cloud Storage takes about one write a second to one
 * object name, and a run's record changes in quick succession at times (a rerun raises the
 * budget, re-plans failed items, then starts driving). Every write after the first therefore
 * stamps `updatedAt`, and waits until a second after the previous stamp: the pause costs a rerun
 * a second or two and spares it 429s, whichever process wrote last.
 */
import { pacedWriteGapMs } from "../core/cadence.js";
import { keys } from "../core/keys.js";
import type { RunRecord } from "../core/model.js";
import { sleep } from "../core/time.js";
import { putJson, type Versioned } from "../store/json.js";
import type { Generation, ObjectStore } from "../store/port.js";

/** When `run` was last written, as far as it says. */
export function lastWritten(run: RunRecord): number {
  return Date.parse(run.updatedAt ?? run.createdAt);
}

/**
 * Replaces run.json with `next`, conditioned on `current`'s generation (a mismatch throws
 * PreconditionFailed), no sooner than a second after `current` was written.
 */
export async function putRunRecord(store: ObjectStore, current: Versioned<RunRecord>, next: RunRecord): Promise<Generation> {
  // Only a store that limits writes per object (Cloud Storage) needs the pause: a folder does not.
  const gap = pacedWriteGapMs(store.limits);
  const wait = lastWritten(current.value) + gap - Date.now();
  // A stamp from the future (a skewed clock) is waited out for at most one gap.
  if (wait > 0) await sleep(Math.min(wait, gap));
  return putJson(store, keys.run(next.runId), { ...next, updatedAt: new Date().toISOString() } satisfies RunRecord, { ifGenerationMatch: current.generation });
}
