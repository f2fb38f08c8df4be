/**
 * Reruns of failed items (DESIGN.md protocol 5): the items that failed are re-planned into new
 * shards, a new round appended to the run. Being rewritten for the v2 plan layout.
 */
import { UsageError } from "../core/errors.js";
import type { ObjectStore } from "../store/port.js";

export interface FailedToReplan {
  i: number;
  key: string;
  shard: string;
  reason: string;
}

/** Writes the failed items into new shards and returns their ids (empty when nothing failed). */
export async function planFailedItems(_store: ObjectStore, runId: string, failed: readonly FailedToReplan[]): Promise<string[]> {
  if (!failed.length) return [];
  throw new UsageError(`run ${runId}: re-planning failed items is not available in this build`);
}
