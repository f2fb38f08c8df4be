/**
 * What shardrun writes to the store, as zod schemas: everything read back is parsed, so a
 * damaged or foreign object is an error that names the field, never undefined behaviour.
 */
import { z } from "zod";
import { RetryPolicy } from "./backoff.js";
import { Budgets, Usage } from "./budget.js";
import { CheckpointCadence, ShardPolicy } from "./job.js";

const RangeSchema = z.tuple([z.number().int().min(0), z.number().int().min(0)]);
export const RangeSetSchema = z.array(RangeSchema);

export const ShardEntry = z.object({
  id: z.string(),
  /** 0 for the plan; 1, 2, … for items re-planned by `rerun --failed-items`. */
  round: z.number().int().min(0),
  count: z.number().int().min(0),
  weight: z.number().min(0),
  /** Run-wide item indices in this shard, in the order of its items.jsonl. */
  indices: RangeSetSchema,
});
export type ShardEntry = z.infer<typeof ShardEntry>;

export const RunState = z.enum(["planned", "running", "succeeded", "partial", "failed", "cancelled", "budget_exhausted"]);
export type RunState = z.infer<typeof RunState>;

export const RunSettings = z.object({
  concurrency: z.number().int().min(1),
  retry: RetryPolicy,
  checkpoint: CheckpointCadence,
  /** At least 3 s, so that a heartbeat (every TTL/3, at most one write a second) renews it in time. */
  leaseTtlMs: z.number().int().min(3000),
  taskTimeoutSeconds: z.number().int().min(1),
  maxRetries: z.number().int().min(0),
  parallelism: z.number().int().min(1),
  tasks: z.number().int().min(1),
  maxLaunches: z.number().int().min(1),
  /** Failure tolerance: beyond this many failed items (or this share) the run fails fast. */
  maxFailedItems: z.object({ count: z.number().int().min(0).optional(), percent: z.number().min(0).max(100).optional() }).optional(),
  budgets: Budgets.default({}),
});
export type RunSettings = z.infer<typeof RunSettings>;

export const RunRecord = z.object({
  v: z.literal(1),
  runId: z.string(),
  job: z.object({
    name: z.string(),
    /** Compiled module, relative to the package root, so that a task finds the same code. */
    module: z.string(),
    version: z.string(),
  }),
  args: z.record(z.string(), z.unknown()),
  trigger: z.string(),
  createdAt: z.string(),
  /** When run.json was last written (a writer waits a second after it: Cloud Storage's limit per object). */
  updatedAt: z.string().optional(),
  state: RunState,
  finishedAt: z.string().optional(),
  /** Why the run ended as it did, when that is not plain success. */
  reason: z.string().optional(),
  /** The first launch number of the current drive (run or rerun): the launch limit counts from it. */
  launchBase: z.number().int().min(0).optional(),
  plan: z.object({
    policy: ShardPolicy,
    totalItems: z.number().int().min(0),
    totalWeight: z.number().min(0),
    shards: z.array(ShardEntry),
  }),
  settings: RunSettings,
});
export type RunRecord = z.infer<typeof RunRecord>;

export const Owner = z.object({
  execution: z.string(),
  taskIndex: z.number().int().min(0),
  attempt: z.number().int().min(0),
  launch: z.number().int().min(0),
  host: z.string().optional(),
  pid: z.number().int().optional(),
});
export type Owner = z.infer<typeof Owner>;

export const FailedItem = z.object({
  /** Position in the shard's items.jsonl. */
  pos: z.number().int().min(0),
  /** Run-wide item index. */
  i: z.number().int().min(0),
  key: z.string(),
  error: z.string(),
  attempts: z.number().int().min(0),
  reason: z.enum(["error", "schema", "non_retriable", "budget"]).default("error"),
});
export type FailedItem = z.infer<typeof FailedItem>;

export const PartRef = z.object({ name: z.string(), count: z.number().int().min(0) });

export const Checkpoint = z.object({
  v: z.literal(1),
  runId: z.string(),
  shard: z.string(),
  itemCount: z.number().int().min(0),
  /** Grows by one at every lease takeover; output parts carry it in their names. */
  epoch: z.number().int().min(0),
  owner: Owner.nullable(),
  heartbeatAt: z.number(),
  leaseTtlMs: z.number().int().min(0),
  state: z.enum(["open", "done"]),
  /** Positions (in items.jsonl) whose output is committed in one of `parts`. */
  done: RangeSetSchema,
  failed: z.array(FailedItem),
  /** The output parts this checkpoint commits. A part not named here is an orphan. */
  parts: z.array(PartRef),
  /** Item executions started under every epoch, redone ones included. */
  executions: z.number().int().min(0),
  /**
   * Results of `ctx.step` for items not settled yet, by position then step name, so that a
   * resumed item does not repeat a finished step. Dropped once the item is done or failed.
   */
  steps: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
  /** Spend recorded through ctx.usage by every owner of the shard. */
  usage: Usage.default({ tokens: 0, usd: 0 }),
  /** Time the shard spent leased, in ms, across owners. */
  elapsedMs: z.number().min(0).default(0),
  /** Set when the owner stopped because a budget ran out; cleared at the next lease. */
  stop: z.enum(["budget"]).optional(),
  stopReason: z.string().optional(),
  updatedAt: z.string(),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export const LaunchRecord = z.object({
  v: z.literal(1),
  runId: z.string(),
  n: z.number().int().min(0),
  createdAt: z.string(),
  launcher: z.enum(["local", "cloud-run"]),
  taskCount: z.number().int().min(1),
  parallelism: z.number().int().min(1),
  taskTimeoutSeconds: z.number().int().min(1),
  maxRetries: z.number().int().min(0),
  /** "static": a task works only its assigned shards; "dynamic": it then claims any left. */
  claim: z.enum(["static", "dynamic"]),
  /** Task index -> shard ids it starts with. */
  assignment: z.array(z.array(z.string())),
  /** Set once the launcher accepted the launch; absent means the launch may not have started. */
  execution: z.string().optional(),
  /** Last state seen by the orchestrator. */
  state: z.enum(["pending", "running", "succeeded", "failed", "cancelled"]).default("pending"),
  finishedAt: z.string().optional(),
});
export type LaunchRecord = z.infer<typeof LaunchRecord>;

/**
 * `runs/<id>/launches/<n>/execution.json`: the execution that works launch n. Created once
 * (create-only) by whoever knows it first: the process that called the launcher, as soon as it
 * has the execution's name, or a task of that execution as its first act. `null`: the launch
 * was given up before anyone claimed it (its starter died, or it never started within the
 * grace); a task of a late execution then does nothing. Tasks of any execution but the one
 * named do nothing either, so a launch is worked by one execution at most.
 */
export const LaunchClaim = z.object({
  v: z.literal(1),
  execution: z.string().min(1).nullable(),
  by: z.enum(["starter", "task", "driver"]),
  at: z.string(),
});
export type LaunchClaim = z.infer<typeof LaunchClaim>;

/**
 * Whether two names denote one execution. The launcher knows its full name
 * (`projects/…/executions/<id>`), a task only its own id (CLOUD_RUN_EXECUTION).
 */
export function sameExecution(a: string, b: string): boolean {
  const id = (name: string) => name.slice(name.lastIndexOf("/") + 1);
  return id(a) === id(b);
}

/** Serialized line of an output part. */
export const OutputLine = z.object({ i: z.number().int(), key: z.string(), output: z.unknown() });
export type OutputLine = z.infer<typeof OutputLine>;

/** Serialized line of a shard's items.jsonl. */
export const ItemLine = z.object({ i: z.number().int().min(0), key: z.string(), item: z.unknown() });
export type ItemLine = z.infer<typeof ItemLine>;

/** `runs/<id>/budget.json`: run-budget reservations by the tasks of the live launch. */
export const BudgetLedger = z.object({ reserved: z.object({ tokens: z.number(), usd: z.number() }) });
export type BudgetLedger = z.infer<typeof BudgetLedger>;
