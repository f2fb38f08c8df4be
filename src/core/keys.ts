/** The store layout of DESIGN.md, in one place. Keys are relative to the store's prefix. */
import { launchName } from "./ids.js";

export const keys = {
  runsPrefix: () => "runs/",
  run: (runId: string) => `runs/${runId}/run.json`,
  runPrefix: (runId: string) => `runs/${runId}/`,
  shardItems: (runId: string, shard: string) => `runs/${runId}/shards/${shard}/items.jsonl`,
  checkpoint: (runId: string, shard: string) => `runs/${runId}/shards/${shard}/checkpoint.json`,
  partsPrefix: (runId: string, shard: string) => `runs/${runId}/shards/${shard}/out/`,
  part: (runId: string, shard: string, name: string) => `runs/${runId}/shards/${shard}/out/${name}`,
  launchesPrefix: (runId: string) => `runs/${runId}/launches/`,
  launch: (runId: string, n: number) => `runs/${runId}/launches/${launchName(n)}.json`,
  /** Which execution works launch n, named once by whoever learns it first (protocol 6). */
  launchClaim: (runId: string, n: number) => `runs/${runId}/launches/${launchName(n)}/execution.json`,
  deadLetter: (runId: string) => `runs/${runId}/dead-letter.jsonl`,
  /** Run-budget reservations of the tasks of the live launch. */
  budget: (runId: string) => `runs/${runId}/budget.json`,
  /** An eagerly recorded step result, by the item's run-wide index (stable across reruns). */
  step: (runId: string, itemIndex: number, stepId: string) => `runs/${runId}/steps/${itemIndex}/${stepId}.json`,
  /** The record of one fire of a schedule at one scheduled time (`20261122T020000Z`), created once. */
  scheduleFire: (name: string, stamp: string) => `schedules/${name}/${stamp}.json`,
} as const;
