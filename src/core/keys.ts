/** The store layout of DESIGN.md, in one place. Keys are relative to the store's prefix. */
import { launchName, partName } from "./ids.js";

const pad = (n: number, w: number) => String(n).padStart(w, "0");

export const keys = {
  runsPrefix: () => "runs/",
  run: (runId: string) => `runs/${runId}/run.json`,
  runPrefix: (runId: string) => `runs/${runId}/`,
  /** The shards of one plan round, one ShardEntry line each. */
  planRound: (runId: string, round: number) => `runs/${runId}/plan/${pad(round, 4)}.jsonl`,
  /** Packed items of the shards numbered from `firstShard` (a header line, then each shard's lines). */
  items: (runId: string, firstShard: number) => `runs/${runId}/items/${pad(firstShard, 6)}.jsonl`,
  shardsPrefix: (runId: string) => `runs/${runId}/shards/`,
  shardPrefix: (runId: string, shard: string) => `runs/${runId}/shards/${shard}/`,
  checkpoint: (runId: string, shard: string) => `runs/${runId}/shards/${shard}/checkpoint.json`,
  partsPrefix: (runId: string, shard: string) => `runs/${runId}/shards/${shard}/out/`,
  part: (runId: string, shard: string, name: string) => `runs/${runId}/shards/${shard}/out/${name}`,
  launchesPrefix: (runId: string) => `runs/${runId}/launches/`,
  launch: (runId: string, n: number) => `runs/${runId}/launches/${launchName(n)}.json`,
  /** What one task of a launch holds, for its next attempt. */
  task: (runId: string, n: number, taskIndex: number) => `runs/${runId}/launches/${launchName(n)}/tasks/${pad(taskIndex, 5)}.json`,
  tasksPrefix: (runId: string, n: number) => `runs/${runId}/launches/${launchName(n)}/tasks/`,
  /** One bank of the run budget shared out to a launch's tasks. */
  budgetBank: (runId: string, n: number, bank: number) => `runs/${runId}/launches/${launchName(n)}/budget/${pad(bank, 5)}.json`,
  /** Which execution works launch n, named once by whoever learns it first (protocol 6). */
  launchClaim: (runId: string, n: number) => `runs/${runId}/launches/${launchName(n)}/execution.json`,
  deadLetter: (runId: string) => `runs/${runId}/dead-letter.jsonl`,
  /** An eagerly recorded step result, by the item's run-wide index (stable across reruns). */
  step: (runId: string, itemIndex: number, stepId: string) => `runs/${runId}/steps/${itemIndex}/${stepId}.json`,
  /** Reconcile's per-run driver lease. */
  driver: (runId: string) => `runs/${runId}/driver.json`,
  /** Runs by creation day: one small object per run, its summary in the object's metadata. */
  runIndexDaysPrefix: () => "index/runs/",
  runIndexDayPrefix: (day: string) => `index/runs/${day}/`,
  runIndex: (day: string, runId: string) => `index/runs/${day}/${runId}`,
  /** Present once every run of the store has an index entry (runs planned before the index were added). */
  runIndexComplete: () => "index/complete",
  /** Serializes re-plans of failed items: one rerun at a time writes a new round. */
  replanLock: (runId: string) => `runs/${runId}/plan/replan.lock`,
  /** Runs being driven (planned and not finished): what reconcile looks at. */
  liveRunsPrefix: () => "index/live/",
  liveRun: (runId: string) => `index/live/${runId}`,
  /** A job bundle, named by the sha256 of its bytes: created once, shared by every run of the same code. */
  bundle: (sha256: string) => `bundles/${sha256}.mjs`,
  /** The record of one fire of a schedule at one scheduled time (`20261122T020000Z`), created once. */
  scheduleFire: (name: string, stamp: string) => `schedules/${name}/${stamp}.json`,
} as const;

/**
 * Where a listing of the parts of lease `epoch` above sequence `namedSeq` starts: the epoch's
 * prefix, from its first part not named by the checkpoint (parts of an epoch are numbered in
 * order, zero-padded, so they sort by sequence).
 */
export function unnamedParts(runId: string, shard: string, epoch: number, namedSeq: number): { prefix: string; startOffset: string } {
  const startOffset = keys.part(runId, shard, partName(epoch, namedSeq + 1));
  return { prefix: startOffset.slice(0, startOffset.lastIndexOf("-") + 1), startOffset };
}

/** `20261122` of an ISO time (UTC): the index day of a run created then. */
export function indexDay(iso: string): string {
  return iso.slice(0, 10).replaceAll("-", "");
}

/** `20261122` of a run id `20261122-020000-…` (run ids start with their UTC creation time). */
export function runDay(runId: string): string {
  return runId.slice(0, 8);
}
