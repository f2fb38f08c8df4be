/**
 * Planning a run. Everything is checked before the first write: the job's arguments, the run's
 * settings, its limits, and every item (schema, key, count) in a first pass that spools the items
 * to a local file (plan-spool.ts). A second pass packs them into items objects of up to 100
 * shards (plan-write.ts, core/items.ts) with bounded parallel writes; the shards' entries go to
 * `plan/0000.jsonl`; run.json, small, is written last, as the commit point, and the run enters
 * the runs index. A plan that fails or is cancelled removes what it wrote, and until it commits
 * no reader lists it (readers list the index).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { Budget, type Budgets } from "../core/budget.js";
import { errorMessage, InvalidInputError, PreconditionFailed, ShardrunError, UsageError } from "../core/errors.js";
import { isRunId, newRunId, shardId } from "../core/ids.js";
import { objectSchemaKeys, parseTolerance, PlanOrder, ShardPolicy, type Job } from "../core/job.js";
import { keys } from "../core/keys.js";
import { RunRecord, RunSettings, type RunIndexEntry, type ShardEntry } from "../core/model.js";
import { cutShards, DEFAULT_PLAN_LIMITS, defaultTaskCount, heaviestFirst, packChunks, PlanLimitExceeded, PlanLimits, type Cut } from "../core/plan.js";
import { formatZodError } from "../core/zod-format.js";
import { readPlanLimits } from "../config/env.js";
import { putJson } from "../store/json.js";
import type { Generation, ObjectStore } from "../store/port.js";
import { putBundle, type RecordedBundle } from "./bundle-store.js";
import type { LineIndex } from "./plan-columns.js";
import { spoolItems, type ItemSource, type Spool } from "./plan-spool.js";
import { PlanWriter, PlanWriteFailed, removeKeys, writeItemChunks } from "./plan-write.js";
import { indexKey, markLive, writeIndexEntry } from "./runs-index.js";

export type { ItemSource } from "./plan-spool.js";

/** How often a planner announced as `planning` renews its index entry (and looks for a cancel). */
export const PLANNING_HEARTBEAT_MS = 10_000;

/**
 * Run settings the caller gives: what a run or rerun flag and an API body set. The job's own
 * settings (concurrency, retry, checkpoint cadence, budgets) come from its definition.
 */
export const PlanSettings = RunSettings.pick({
  leaseTtlMs: true,
  taskTimeoutSeconds: true,
  maxRetries: true,
  maxLaunches: true,
  maxFailedItems: true,
  itemTimeoutMs: true,
}).extend({
  /** @default one per shard, at most the job's `tasks` or 10 */
  tasks: z.number().int().min(1).max(10_000).optional(),
  /** @default `tasks` (never more) */
  parallelism: z.number().int().min(1).max(10_000).optional(),
  /** Run-level budget limits laid over the job's `budgets.run`. */
  runBudget: Budget.optional(),
  /** @default the job's `crashLimit` (2) */
  crashLimit: z.number().int().min(1).optional(),
  /** Items at once per task. @default the job's `concurrency` */
  concurrency: z.number().int().min(1).max(1000).optional(),
});
export type PlanSettings = z.input<typeof PlanSettings>;

export interface PlanOptions {
  store: ObjectStore;
  job: Job;
  /** The job's entry and code version, as recorded in run.json. */
  module: string;
  version: string;
  /**
   * The job's bundle, which the tasks run: written create-only just before run.json (only a plan
   * that passed every check writes it). Absent: tasks load `module` as it is.
   */
  bundle?: RecordedBundle;
  /** Raw run arguments; parsed with the job's `args` schema. */
  args: Record<string, unknown>;
  /** @default the job's `shard` */
  policy?: ShardPolicy;
  /** @default the job's `order` */
  order?: PlanOrder;
  /** Items from elsewhere than the job's source, e.g. `itemsFromJsonl("items.jsonl")`. @default the job's source */
  source?: ItemSource;
  settings: PlanSettings;
  /** This run's limits, over the defaults (SHARDRUN_MAX_ITEMS, SHARDRUN_MAX_SHARDS, else DEFAULT_PLAN_LIMITS). */
  limits?: Partial<PlanLimits>;
  trigger: string;
  now?: Date;
  /** @default a new id from the job's name and `now` */
  runId?: string;
  /**
   * Record the run as being driven from its first launch (state "running", launch limit from
   * launch 0), for a caller that drives it at once: run.json is then written once at the start,
   * not twice within a second (Cloud Storage's limit per object).
   * @default false (state "planned": someone starts driving it later)
   */
  driving?: boolean;
  /** Aborts the plan: it stops, removes what it wrote and throws PlanCancelled. */
  signal?: AbortSignal;
  /**
   * Make the run visible while it is planned: its index entry is written first, in state
   * `planning` (so an API can answer 202 at once, and `cancelPlanning` can stop it from another
   * process). A failed or cancelled plan removes the entry. "deferred": written only when the
   * `announce` that `onStart` hands over is called, and only while the plan is still going, so
   * that a plan refused early (a limit, a duplicate key) writes nothing at all.
   * @default false
   */
  announce?: boolean | "deferred";
  /** Folder for the plan's spool file (removed when the plan ends). @default os.tmpdir() */
  spoolDir?: string;
  /** Store writes in flight. @default 16 */
  writeConcurrency?: number;
  /** Environment the default limits are read from. @default process.env */
  env?: NodeJS.ProcessEnv;
  onProgress?: (planned: { phase: "read" | "write"; items: number; shards: number }) => void;
  /**
   * Called once the run's id is chosen (with `announce: true`: once the run is visible as
   * `planning`). `announce()` makes a deferred announcement now; it resolves once the entry is
   * written, or at once when the plan has already committed or failed.
   */
  onStart?: (runId: string, announce: () => Promise<void>) => void;
}

/** The plan was cancelled (its AbortSignal, or `cancelPlanning`); what it wrote was removed. */
export class PlanCancelled extends ShardrunError {
  constructor(runId: string, options?: { cause?: unknown }, note = "") {
    super("USAGE", note ? `the planning of run ${runId} was cancelled${note}` : `the planning of run ${runId} was cancelled; what it wrote was removed`, options);
  }
}

/** A plan failed on the store or the local disk: one line naming where, and what it left. */
export class PlanFailed extends ShardrunError {
  /** Objects it wrote and could not remove (no reader lists them: the run never committed). */
  readonly left: readonly string[];
  constructor(message: string, left: readonly string[], options?: { cause?: unknown }) {
    super("INTERNAL", message, options);
    this.left = left;
  }
}

export function parseArgs(job: Job, raw: Record<string, unknown>): Record<string, unknown> {
  if (!job.args) {
    if (Object.keys(raw).length) throw new InvalidInputError(`job "${job.name}" takes no arguments, got --arg ${Object.keys(raw)[0]}`);
    return {};
  }
  // A misspelled --arg would otherwise be dropped without a word by a non-strict object schema.
  const known = objectSchemaKeys(job.args);
  if (known) {
    const unknown = Object.keys(raw).filter((k) => !known.includes(k));
    if (unknown.length) {
      throw new InvalidInputError(`job "${job.name}" has no argument ${unknown.map((k) => `"${k}"`).join(", ")}; its arguments: ${known.join(", ") || "none"}`);
    }
  }
  const parsed = job.args.safeParse(raw);
  if (!parsed.success) throw new InvalidInputError(`job "${job.name}" arguments: ${formatZodError(parsed.error, "arg")}`);
  return (parsed.data ?? {}) as Record<string, unknown>;
}

/** The run's limits: this run's over the environment's over the defaults, each checked. */
export function resolveLimits(run: Partial<PlanLimits> | undefined, env: NodeJS.ProcessEnv = process.env): PlanLimits {
  const merged = { ...DEFAULT_PLAN_LIMITS, ...readPlanLimits(env), ...run };
  const parsed = PlanLimits.safeParse(merged);
  if (!parsed.success) throw new InvalidInputError(`run limits: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

export async function planRun(o: PlanOptions): Promise<RunRecord> {
  // Every check first: nothing is written until all of them pass.
  const now = o.now ?? new Date();
  const createdAt = now.toISOString();
  const args = parseArgs(o.job, o.args);
  const settings = PlanSettings.safeParse(o.settings);
  if (!settings.success) throw new InvalidInputError(`run settings: ${formatZodError(settings.error)}`);
  const limits = resolveLimits(o.limits, o.env);
  const policyParsed = ShardPolicy.safeParse(o.policy ?? o.job.shard);
  if (!policyParsed.success) throw new InvalidInputError(`shard policy: ${formatZodError(policyParsed.error)}`);
  const policy = policyParsed.data;
  if ("count" in policy && policy.count > limits.maxShards) throw new PlanLimitExceeded("maxShards", limits.maxShards, `asks for ${policy.count} shards`);
  const orderParsed = PlanOrder.safeParse(o.order ?? o.job.order ?? "source");
  if (!orderParsed.success) throw new InvalidInputError(`order: ${formatZodError(orderParsed.error)}`);
  const order = orderParsed.data;
  const base = runSettings(o.job, settings.data, 1);
  const checked = RunSettings.safeParse(base);
  if (!checked.success) throw new InvalidInputError(`run settings: ${formatZodError(checked.error)}`);
  o.signal?.throwIfAborted();
  const runId = await freshRunId(o, now);

  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  const writer = new PlanWriter(o.store, { signal, ...(o.writeConcurrency ? { concurrency: o.writeConcurrency } : {}) });
  const entry: RunIndexEntry = { runId, job: o.job.name, state: "planning", createdAt, items: 0, trigger: o.trigger };
  const announced = o.announce ? new Announcement(o.store, entry, stop) : undefined;
  let spoolDir: string | undefined;
  let spool: Spool | undefined;
  let committed = false;
  // No announcement once the plan has decided (to commit, or to clean up): nobody would remove it.
  let settled = false;
  let announcing: Promise<void> | undefined;
  const announceNow = (): Promise<void> => {
    if (!announced || settled || signal.aborted) return announcing ?? Promise.resolve();
    announcing ??= announced.start();
    return announcing;
  };
  try {
    if (announced && o.announce !== "deferred") await announceNow();
    o.onStart?.(runId, announceNow);
    spoolDir = await mkdtemp(join(o.spoolDir ?? tmpdir(), "shardrun-plan-")).catch((e: unknown) => {
      throw spoolFailed(runId, o.spoolDir ?? tmpdir(), e);
    });
    spool = await spoolItems({
      job: o.job,
      args,
      ...(o.source ? { source: o.source } : {}),
      dir: spoolDir,
      signal,
      limits,
      policy,
      order,
      onProgress: (items) => o.onProgress?.({ phase: "read", items, shards: 0 }),
    }).catch((e: unknown) => {
      throw isDiskError(e) ? spoolFailed(runId, spoolDir!, e) : e;
    });
    // Every item is read and checked: what is left is writing it.
    o.onProgress?.({ phase: "write", items: spool.count, shards: 0 });
    const costs = spool.costs;
    const ordered = costs ? heaviestFirst(spool.count, (i) => costs.at(i)) : undefined;
    // Sorted: the costs are of no more use, and the second pass is where memory peaks.
    delete spool.costs;
    const weights = spool.weights;
    const cut = cutShards(policy, (i) => weights.at(i), spool.count, ordered, limits.maxShards);
    const spans = packChunks(shardBytes(cut, spool.lines, ordered));
    let shardsWritten = 0;
    await writeItemChunks(runId, spool, cut, spans, 0, writer, ordered, (span) => {
      shardsWritten += span.end - span.first;
      o.onProgress?.({ phase: "write", items: spool!.count, shards: shardsWritten });
    });
    await writer.put(keys.planRound(runId, 0), roundEntries(cut, 0, 0, ordered), "application/x-ndjson");
    await writer.drain();

    const record: RunRecord = {
      v: 2,
      runId,
      job: { name: o.job.name, module: o.module, version: o.version, ...(o.bundle ? { bundle: o.bundle.key } : {}) },
      args,
      trigger: o.trigger,
      createdAt,
      updatedAt: new Date().toISOString(),
      ...(o.driving ? { state: "running" as const, launchBase: 0 } : { state: "planned" as const }),
      plan: {
        policy,
        order,
        totalItems: spool.count,
        totalWeight: spool.totalWeight,
        shardCount: cut.ends.length,
        rounds: [{ round: 0, firstShard: 0, shards: cut.ends.length, items: spool.count, superseded: 0 }],
        itemChunks: spans.map((s) => s.first),
      },
      settings: runSettings(o.job, settings.data, cut.ends.length),
    };
    settled = true;
    await announcing;
    // Last look for a cancel from another process before the commit point.
    if (announced) await announced.beat();
    signal.throwIfAborted();
    if (o.bundle) await putBundle(o.store, o.bundle);
    await commit(o.store, record);
    committed = true;
    await indexCommitted(o.store, record, announced);
    return record;
  } catch (e) {
    if (committed) throw e;
    // Aborted before this failure: the plan was cancelled, whatever the error it stopped with.
    const cancel: unknown = signal.aborted ? (signal.reason ?? e) : undefined;
    settled = true;
    stop.abort();
    // An announcement in flight lands first, so that its entry is removed with the rest.
    await announcing?.catch(() => undefined);
    announced?.stop();
    await writer.settle();
    const left = await removeKeys(o.store, [...writer.written, ...(announced?.key ? [announced.key] : [])]);
    throw describeFailure(e, o.store, runId, left, cancel);
  } finally {
    announced?.stop();
    await spool?.file.close().catch(() => undefined);
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The run's settings as run.json records them. */
function runSettings(job: Job, s: z.output<typeof PlanSettings>, shards: number): RunSettings {
  const tasks = s.tasks ?? defaultTaskCount(shards, job.tasks);
  const tolerance = s.maxFailedItems ?? (job.maxFailedItems !== undefined ? parseTolerance(job.maxFailedItems) : undefined);
  return {
    leaseTtlMs: s.leaseTtlMs,
    taskTimeoutSeconds: s.taskTimeoutSeconds,
    maxRetries: s.maxRetries,
    maxLaunches: s.maxLaunches,
    ...(tolerance ? { maxFailedItems: tolerance } : {}),
    ...((s.itemTimeoutMs ?? job.itemTimeoutMs) !== undefined ? { itemTimeoutMs: (s.itemTimeoutMs ?? job.itemTimeoutMs)! } : {}),
    crashLimit: s.crashLimit ?? job.crashLimit,
    budgets: mergeRunBudget(job.budgets, s.runBudget),
    tasks,
    parallelism: Math.min(s.parallelism ?? tasks, tasks),
    concurrency: s.concurrency ?? job.concurrency,
    retry: job.retry,
    checkpoint: job.checkpoint,
  };
}

/** A run id no run of the store has: the caller's (refused if taken), or a new one. */
async function freshRunId(o: PlanOptions, now: Date): Promise<string> {
  if (o.runId !== undefined) {
    if (!isRunId(o.runId)) throw new UsageError(`run id "${o.runId}" is not valid: expected one like 20261122-020000-summarize-docs-ab12`);
    if (await o.store.get(keys.run(o.runId))) throw new UsageError(`run ${o.runId} already exists in ${o.store.url}`);
    return o.runId;
  }
  for (let tries = 0; ; tries++) {
    const id = newRunId(o.job.name, now);
    if (!(await o.store.get(keys.run(id)))) return id;
    // Four hex digits per second and job: a clash is rare, a second one rarer still.
    if (tries === 5) throw new ShardrunError("INTERNAL", `no free run id for job ${o.job.name} at ${now.toISOString()} in ${o.store.url}`);
  }
}

/** Writes run.json create-only. A write whose answer was lost is settled by reading it back. */
async function commit(store: ObjectStore, record: RunRecord): Promise<void> {
  try {
    await putJson(store, keys.run(record.runId), record, { ifGenerationMatch: 0 });
  } catch (e) {
    const back = await store.get(keys.run(record.runId)).catch(() => null);
    if (back && new TextDecoder().decode(back.bytes) === JSON.stringify(record)) return;
    throw new PlanWriteFailed(store, keys.run(record.runId), e);
  }
}

/** After the commit: the run's index entry says `planned` (unless a cancel won the race). */
async function indexCommitted(store: ObjectStore, record: RunRecord, announced: Announcement | undefined): Promise<void> {
  // Live until its driver finishes it: reconcile drives a planned run whose planner went away.
  await markLive(store, record.runId).catch(() => undefined);
  const entry: RunIndexEntry = { runId: record.runId, job: record.job.name, state: record.state, createdAt: record.createdAt, items: record.plan.totalItems, trigger: record.trigger };
  try {
    await writeIndexEntry(store, entry, announced ? { ifGenerationMatch: announced.generation } : {});
  } catch (e) {
    if (!(e instanceof PreconditionFailed) || !announced) {
      // The run is committed; its entry is filled in by the next recordRunState of its driver.
      return;
    }
    // cancelPlanning won, between our last look and the commit: the run is committed, cancelled.
    const cancelled: RunRecord = { ...record, state: "cancelled", reason: "cancelled while it was planned" };
    const run = await store.get(keys.run(record.runId));
    if (run) await putJson(store, keys.run(record.runId), cancelled, { ifGenerationMatch: run.generation });
    record.state = "cancelled";
    record.reason = cancelled.reason;
    await writeIndexEntry(store, { ...entry, state: "cancelled" }).catch(() => undefined);
  }
}

/**
 * The `planning` index entry and its heartbeat. A rewrite that finds another generation means
 * `cancelPlanning` changed the entry: the plan stops.
 */
class Announcement {
  readonly #store: ObjectStore;
  readonly #entry: RunIndexEntry;
  readonly #stop: AbortController;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  key: string | undefined;
  generation: Generation | undefined;

  constructor(store: ObjectStore, entry: RunIndexEntry, stop: AbortController) {
    this.#store = store;
    this.#entry = entry;
    this.#stop = stop;
  }

  async start(): Promise<void> {
    // Known before the write: a write whose answer is lost may still have landed, and cleanup removes it.
    this.key = indexKey(this.#entry.runId, this.#entry.createdAt);
    this.generation = await writeIndexEntry(this.#store, this.#entry, { ifGenerationMatch: 0, heartbeatAt: new Date().toISOString() });
    this.#timer = setInterval(() => void this.beat().catch(() => undefined), PLANNING_HEARTBEAT_MS);
    this.#timer.unref();
  }

  /** Renews the entry; throws PlanCancelled (and aborts the plan) when it was cancelled. */
  beat(): Promise<void> {
    this.#chain = this.#chain.then(async () => {
      if (this.#stop.signal.aborted || this.generation === undefined) return;
      try {
        this.generation = await writeIndexEntry(this.#store, this.#entry, { ifGenerationMatch: this.generation, heartbeatAt: new Date().toISOString() });
      } catch (e) {
        if (!(e instanceof PreconditionFailed)) return; // a missed heartbeat is not a cancel
        this.#stop.abort(new PlanCancelled(this.#entry.runId, { cause: e }));
      }
    });
    return this.#chain.then(() => this.#stop.signal.throwIfAborted());
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Byte length of each shard's lines, in shard order. */
function shardBytes(cut: Cut, lines: LineIndex, order?: Uint32Array): Float64Array {
  const out = new Float64Array(cut.ends.length);
  let p = 0;
  for (let s = 0; s < cut.ends.length; s++) {
    const end = cut.ends[s]!;
    let bytes = 0;
    for (let q = p; q < end; q++) bytes += lines.lengthOf(order ? order[q]! : q);
    out[s] = bytes;
    p = end;
  }
  return out;
}

/**
 * The ShardEntry lines of a round: shard numbers from `firstShard`, indices from `order` (or
 * contiguous). Built straight into one buffer of a size counted first: a heaviest-first plan of
 * a million items has a million index ranges here, and as one JS string it would sit in the
 * heap twice (string and encoded copy).
 */
export function roundEntries(cut: Cut, round: number, firstShard: number, order?: Uint32Array | readonly number[]): Uint8Array {
  // Upper bound of a line: the fixed fields (weights print in at most 24 characters), then at
  // most 2 × 16 digits and 4 characters per range.
  let bound = 0;
  let p = 0;
  for (let s = 0; s < cut.ends.length; s++) {
    const end = cut.ends[s]!;
    bound += 128 + 36 * (order ? countRanges(order, p, end) : 1);
    p = end;
  }
  const out = Buffer.allocUnsafe(bound);
  let at = 0;
  p = 0;
  for (let s = 0; s < cut.ends.length; s++) {
    const end = cut.ends[s]!;
    const entry: ShardEntry = { id: shardId(firstShard + s), round, count: end - p, weight: cut.weights[s]!, indices: order ? rangesInOrder(order, p, end) : [[p, end]] };
    const line = JSON.stringify(entry) + "\n";
    // ASCII only (ids and numbers), so characters are bytes; a short write would be a bad bound.
    if (out.write(line, at, "latin1") !== line.length) throw new RangeError(`plan round ${round}: entry of shard ${entry.id} does not fit its bound`);
    at += line.length;
    p = end;
  }
  return out.subarray(0, at);
}

function countRanges(order: Uint32Array | readonly number[], from: number, to: number): number {
  let n = 0;
  for (let p = from; p < to; p++) if (p === from || order[p] !== order[p - 1]! + 1) n++;
  return n;
}

/** Item indices in the shard's order, consecutive ones merged into a range. */
function rangesInOrder(order: Uint32Array | readonly number[], from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  for (let p = from; p < to; p++) {
    const i = order[p]!;
    const last = out[out.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}

function isDiskError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT" || code === "EROFS" || code === "EACCES" || code === "EIO";
}

function spoolFailed(runId: string, dir: string, e: unknown): PlanFailed {
  const code = (e as { code?: unknown } | null)?.code;
  const what = code === "ENOSPC" || code === "EDQUOT" ? "is full: free space there or point TMPDIR at a larger disk" : `cannot be used (${errorMessage(e)})`;
  return new PlanFailed(`planning run ${runId}: the spool folder ${dir} ${what}; nothing was written to the store`, [], { cause: e });
}

/** One line for a failed plan: where it failed, and whether anything was left behind. */
function describeFailure(e: unknown, store: ObjectStore, runId: string, left: readonly string[], cancel: unknown): unknown {
  const leftNote = left.length ? `; ${left.length} of the objects it wrote could not be removed (under runs/${runId}/; no reader lists them)` : "";
  const cleanup = leftNote || "; the plan's objects were removed";
  if (cancel !== undefined) {
    if (cancel instanceof PlanCancelled && !leftNote) return cancel;
    return new PlanCancelled(runId, { cause: cancel }, leftNote);
  }
  if (e instanceof PlanWriteFailed) {
    const cause = e.cause as { code?: unknown } | undefined;
    const full = cause?.code === "ENOSPC" || cause?.code === "EDQUOT" || cause?.code === "STORE_FULL";
    const message = full
      ? `planning run ${runId}: the store ${store.url} is full (writing ${e.key}: ${errorMessage(cause)}): free space there and plan again${cleanup}`
      : `planning run ${runId}: ${e.message}${cleanup}`;
    return new PlanFailed(message, left, { cause: e });
  }
  if (e instanceof PlanFailed) return leftNote ? new PlanFailed(e.message + leftNote, left, { cause: e }) : e;
  // The user's mistakes (a limit, a duplicate key, a bad item file) keep their class and exit code.
  if (e instanceof ShardrunError) return e;
  return new PlanFailed(`planning run ${runId} in ${store.url}: ${errorMessage(e)}${leftNote}`, left, { cause: e });
}

/** The job's budgets with run-level limits given for this run laid over them. */
export function mergeRunBudget(budgets: Budgets, run?: Budget): Budgets {
  if (!run || !Object.keys(run).length) return budgets;
  return { ...budgets, run: { ...budgets.run, ...run } };
}
