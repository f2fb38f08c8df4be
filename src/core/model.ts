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

/**
 * One shard of a plan round (`runs/<id>/plan/<round>.jsonl`, one line each). Round 0 is the plan;
 * rounds 1, 2, … hold the items re-planned by `rerun --failed-items`.
 */
export const ShardEntry = z.object({
  id: z.string(),
  /** 0 for the plan; 1, 2, … for items re-planned by `rerun --failed-items`. */
  round: z.number().int().min(0),
  count: z.number().int().min(0),
  weight: z.number().min(0),
  /** Run-wide item indices in this shard, in the order of its items (sorted ranges when contiguous). */
  indices: RangeSetSchema,
});
export type ShardEntry = z.infer<typeof ShardEntry>;

/**
 * Where a shard's items live: shards are packed, a hundred or so to an object
 * (`runs/<id>/items/<first shard number>.jsonl`), so that a plan of 10,000 shards is a hundred
 * writes. The object starts with one header line (ItemsHeader) giving each shard's byte range
 * after the header; a task reads the header and then only its shard's bytes.
 */
export const ItemsHeader = z.object({
  v: z.literal(1),
  /** [shard number, byte offset after the header line, byte length, item count, crc32c (hex)] */
  shards: z.array(z.tuple([z.number().int().min(0), z.number().int().min(0), z.number().int().min(0), z.number().int().min(0), z.string()])),
});
export type ItemsHeader = z.infer<typeof ItemsHeader>;

export const RunState = z.enum(["planning", "planned", "running", "succeeded", "partial", "failed", "cancelled", "budget_exhausted"]);
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
  /** An item attempt running longer than this is aborted (ctx.signal) and, if it ignores that, failed with reason `timeout`. */
  itemTimeoutMs: z.number().int().min(1).optional(),
  /** Crashes of the task process while an item was in flight before the item fails with reason `crashed`. */
  crashLimit: z.number().int().min(1).default(2),
});
export type RunSettings = z.infer<typeof RunSettings>;

/** A plan round: its shards are numbered `firstShard` … `firstShard + shards - 1`. */
export const PlanRound = z.object({
  round: z.number().int().min(0),
  firstShard: z.number().int().min(0),
  shards: z.number().int().min(0),
  items: z.number().int().min(0),
  /** Failures of earlier rounds that this round re-planned (they no longer count as failed). */
  superseded: z.number().int().min(0).default(0),
});
export type PlanRound = z.infer<typeof PlanRound>;

export const RunRecord = z.object({
  v: z.literal(2),
  runId: z.string(),
  job: z.object({
    name: z.string(),
    /**
     * The job's entry (`jobs/<name>/index.ts`, relative to the package root when inside it), which
     * `rerun --upgrade` rebuilds; in runs recorded before bundles, the compiled module tasks load.
     */
    module: z.string(),
    /** Package version + the first 12 hex digits of the bundle's sha256 (of the compiled module before bundles). */
    version: z.string(),
    /** The bundle tasks run, `bundles/<sha256>.mjs` in the store; absent in runs recorded before bundles. */
    bundle: z.string().regex(/^bundles\/[0-9a-f]{64}\.mjs$/, "Expected bundles/<sha256>.mjs").optional(),
  }),
  args: z.record(z.string(), z.unknown()),
  trigger: z.string(),
  createdAt: z.string(),
  /** When run.json was last written (a writer waits a second after it: Cloud Storage's limit per object). */
  updatedAt: z.string().optional(),
  state: RunState,
  /** When the last drive that did work ended. */
  finishedAt: z.string().optional(),
  /** Why the run ended as it did, when that is not plain success. */
  reason: z.string().optional(),
  /** The first launch number of the current drive (run or rerun): the launch limit counts from it. */
  launchBase: z.number().int().min(0).optional(),
  plan: z.object({
    policy: ShardPolicy,
    /** "heaviest-first": items were ordered by cost, heaviest first, before they were cut into shards. */
    order: z.enum(["source", "heaviest-first"]).default("source"),
    totalItems: z.number().int().min(0),
    totalWeight: z.number().min(0),
    /** Shards across all rounds. */
    shardCount: z.number().int().min(0),
    rounds: z.array(PlanRound),
    /** First shard number of each items object (sorted): shard s lives in the last one ≤ s. */
    itemChunks: z.array(z.number().int().min(0)),
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

export const FailureReason = z.enum(["error", "schema", "non_retriable", "budget", "timeout", "crashed", "corrupt"]);
export type FailureReason = z.infer<typeof FailureReason>;

export const FailedItem = z.object({
  /** Position in the shard's items. */
  pos: z.number().int().min(0),
  /** Run-wide item index. */
  i: z.number().int().min(0),
  key: z.string(),
  error: z.string(),
  attempts: z.number().int().min(0),
  reason: FailureReason.default("error"),
  /** The first lines of the error's stack, when there was one. */
  stack: z.string().optional(),
  /** The last log line the item wrote before it failed. */
  lastLog: z.string().optional(),
});
export type FailedItem = z.infer<typeof FailedItem>;

/**
 * An output part named by a checkpoint: its outputs (`count` lines) come first, then one line per
 * failure it records (`failed`). `crc32c` and `bytes` let readers prove the part is whole;
 * `positions` let a repair run exactly its items again when it is not.
 */
export const PartRef = z.object({
  name: z.string(),
  count: z.number().int().min(0),
  failed: z.number().int().min(0).default(0),
  bytes: z.number().int().min(0).optional(),
  /** CRC32C of the part's bytes, 8 hex digits (Cloud Storage's checksum). */
  crc32c: z.string().optional(),
  positions: RangeSetSchema.optional(),
});
export type PartRef = z.infer<typeof PartRef>;

/**
 * A leased range of a shard's positions. A shard starts as one range; a task with free slots may
 * split off the back half of another range's unreserved part (`[horizon, end)`), which becomes a
 * range of its own with its own owner and epoch. The owner of a range starts only positions below
 * its horizon, and moves the horizon on by a checkpoint write: that write is what stops a thief.
 */
export const Lease = z.object({
  start: z.number().int().min(0),
  end: z.number().int().min(0),
  owner: Owner.nullable(),
  /** Unique within the shard; output parts of this lease are named `<epoch>-<seq>…`. */
  epoch: z.number().int().min(0),
  heartbeatAt: z.number(),
  leaseTtlMs: z.number().int().min(0),
  /** The owner may start positions below this one (and at or above `start`). */
  horizon: z.number().int().min(0),
  /** Positions started and not settled at the time of this write (poison isolation). */
  inflight: z.array(z.number().int().min(0)).default([]),
  /** Positions that were in flight when an owner died: run one at a time until each settles. */
  suspects: z.array(z.number().int().min(0)).default([]),
  /**
   * "parts": output parts of this epoch that no checkpoint names yet are committed progress (a
   * store with a per-object write gap); "checkpoint": only what a checkpoint names counts.
   */
  mode: z.enum(["checkpoint", "parts"]).default("checkpoint"),
  /** Highest part sequence number of this epoch that the checkpoint names. */
  namedSeq: z.number().int().min(0).default(0),
});
export type Lease = z.infer<typeof Lease>;

export const Checkpoint = z.object({
  v: z.literal(2),
  runId: z.string(),
  shard: z.string(),
  itemCount: z.number().int().min(0),
  /** The primary lease (the range starting at position 0), mirrored for readers of v1. */
  epoch: z.number().int().min(0),
  owner: Owner.nullable(),
  heartbeatAt: z.number(),
  leaseTtlMs: z.number().int().min(0),
  /** Highest epoch issued in this shard: the next lease takeover or split gets the one after. */
  epochSeq: z.number().int().min(0),
  /** Ranges of positions not settled yet, each with its owner (sorted, disjoint). */
  leases: z.array(Lease),
  state: z.enum(["open", "done"]),
  /** Positions (in the shard's items) whose output is committed in one of `parts`. */
  done: RangeSetSchema,
  failed: z.array(FailedItem),
  /** The output parts this checkpoint commits. A part not named here is an orphan (or live progress of a "parts" lease). */
  parts: z.array(PartRef),
  /** Crashes of an owner's process while the position was in flight (by position): at the crash limit it fails `crashed`. */
  crashes: z.record(z.string(), z.number().int().min(0)).default({}),
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
  /** The shard's items could not be read back intact: every item failed with reason `corrupt`. */
  corrupt: z.string().optional(),
  updatedAt: z.string(),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export const LaunchRecord = z.object({
  v: z.literal(2),
  runId: z.string(),
  n: z.number().int().min(0),
  createdAt: z.string(),
  launcher: z.enum(["local", "cloud-run", "sim"]),
  taskCount: z.number().int().min(1),
  parallelism: z.number().int().min(1),
  taskTimeoutSeconds: z.number().int().min(1),
  maxRetries: z.number().int().min(0),
  /**
   * The launch's shard numbers in the order tasks take them. Task t starts with the shards at
   * positions t, t + taskCount, t + 2·taskCount, … of this list, then takes work from others.
   */
  shards: RangeSetSchema,
  /** Progress cadence of this launch's tasks (adapted to the task count and the store's limits). */
  progressMs: z.number().int().min(1),
  leaseTtlMs: z.number().int().min(3000),
  /** The run budget left when the launch started, shared out over `banks` objects. */
  budget: z.object({ tokens: z.number().optional(), usd: z.number().optional(), banks: z.number().int().min(1) }).optional(),
  /** Set once the launcher accepted the launch; absent means the launch may not have started. */
  execution: z.string().optional(),
  /** Last state seen by the orchestrator. */
  state: z.enum(["pending", "running", "succeeded", "failed", "cancelled"]).default("pending"),
  finishedAt: z.string().optional(),
});
export type LaunchRecord = z.infer<typeof LaunchRecord>;

/** `launches/<n>/tasks/<t>.json`: what a task holds, so that its next attempt takes it over at once. */
export const TaskRecord = z.object({
  v: z.literal(1),
  taskIndex: z.number().int().min(0),
  attempt: z.number().int().min(0),
  /** [shard number, lease start] of every range the attempt holds. */
  holdings: z.array(z.tuple([z.number().int().min(0), z.number().int().min(0)])),
  updatedAt: z.string(),
});
export type TaskRecord = z.infer<typeof TaskRecord>;

/** `launches/<n>/budget/<k>.json`: one bank of the run budget; absent means untouched (its full share). */
export const BudgetBank = z.object({
  left: z.object({ tokens: z.number(), usd: z.number() }),
  /** When it was written (ms since the epoch, the writer's clock): the next write waits a second after it. */
  at: z.number().optional(),
});
export type BudgetBank = z.infer<typeof BudgetBank>;

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

/** A failure line of an output part (after its outputs). */
export const FailureLine = z.object({ i: z.number().int(), key: z.string(), failed: FailedItem.omit({ pos: true, i: true, key: true }) });
export type FailureLine = z.infer<typeof FailureLine>;

/** Serialized line of a shard's items. */
export const ItemLine = z.object({ i: z.number().int().min(0), key: z.string(), item: z.unknown() });
export type ItemLine = z.infer<typeof ItemLine>;

/** `index/runs/<day>/<runId>`: a run as listings show it, without reading run.json. */
export const RunIndexEntry = z.object({
  runId: z.string(),
  job: z.string(),
  state: RunState,
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  items: z.number().int().min(0),
  failed: z.number().int().min(0).optional(),
  trigger: z.string(),
});
export type RunIndexEntry = z.infer<typeof RunIndexEntry>;
