/**
 * `defineJob()`: a job is a plain, validated object. Its `name` is explicit because the worker
 * finds the job by name when it resumes a run, never by file position.
 */
import { Cron } from "croner";
import { z } from "zod";
import { InvalidInputError } from "./errors.js";
import { RetryPolicy } from "./backoff.js";
import { Budgets } from "./budget.js";
import { LimitSpec } from "./limits.js";
import { FailureTolerance } from "./settings.js";
import { formatZodError } from "./zod-format.js";

/** What `run(item, ctx)` gets besides the item. */
export interface JobContext {
  /** Aborted when the task must stop (deadline, SIGTERM, lease lost): pass it to fetch and friends. */
  readonly signal: AbortSignal;
  /** Structured log lines tagged with run, shard and item. */
  readonly log: JobLogger;
  /** 1 on the first try of this item in this task, 2 on the first retry, … */
  readonly attempt: number;
  /** The item's stable key (from `key(item)`, or its index in the run). */
  readonly itemKey: string;
  /** The item's index in the run's item list. */
  readonly itemIndex: number;
  readonly runId: string;
  readonly shard: string;
  /** Lease epoch of the range's owner: unique within the shard, new at every takeover or split. */
  readonly epoch: number;
  /** The run's arguments, as the job's `args` schema parsed them. */
  readonly args: Readonly<Record<string, unknown>>;
  /**
   * A durable step: runs `fn` once per item and returns its stored result when the item is
   * retried or its shard resumes after a kill, so a paid LLM call or a side effect is not
   * repeated. Names must be unique within an item. Results are stored as JSON; give `schema` to
   * validate them on read-back.
   */
  step<T>(name: string, fn: () => Promise<T> | T, options?: StepOptions<T>): Promise<T>;
  /**
   * A stable key for run/item/step to hand to external APIs (Idempotency-Key headers): the same
   * on every retry, resume and rerun of the item.
   */
  idempotencyKey(name: string): string;
  /**
   * Runs `fn` within the job's run-wide limit `name` (`limits` in the definition): requests per
   * second and calls in flight, shared out over the tasks running at once.
   */
  limit<T>(name: string, fn: () => Promise<T> | T): Promise<T>;
  /**
   * Records spend (LLM tokens, dollars) for this item: it counts toward the item, shard and run
   * budgets and shows in `status`. Throws when the item goes over its own budget.
   */
  usage(spend: { tokens?: number; usd?: number }): void;
}

export interface StepOptions<T> {
  /** Validates the stored result when it is read back instead of running the step. */
  schema?: z.ZodType<T>;
  /**
   * "checkpoint": recorded with the shard's next checkpoint (cheap: no extra write; a kill before
   * that checkpoint repeats the step). "eager": written to the store as soon as it finishes (one
   * write per step; for expensive or side-effecting steps). @default the job's `steps`
   */
  record?: StepRecording;
}

export type StepRecording = "checkpoint" | "eager";

export interface JobLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const JOB_NAME_PATTERN = /^[a-z][a-z0-9-]{0,47}$/;

export const ShardPolicy = z.union([
  z.strictObject({ count: z.number().int().min(1).max(100_000) }),
  z.strictObject({ itemsPerShard: z.number().int().min(1) }),
  z.strictObject({ weightPerShard: z.number().positive() }),
]);
export type ShardPolicy = z.infer<typeof ShardPolicy>;

// One failure tolerance for job definitions, CLI flags and API bodies (core/settings.ts).
export { FailureTolerance, parseTolerance } from "./settings.js";

/**
 * The order items are cut into shards: as the source yields them, or heaviest first by the job's
 * `cost` estimate (see JobDefinition.order).
 */
export const PlanOrder = z.enum(["source", "heaviest-first"]);
export type PlanOrder = z.infer<typeof PlanOrder>;

export const CheckpointCadence = z.strictObject({
  /**
   * Checkpoint after this many finished items.
   * @default 50
   */
  everyItems: z.number().int().min(1).default(50),
  /**
   * Checkpoint at least this often (ms) while items finish. Never faster than once a second:
   * Cloud Storage allows about one write per second to one object.
   * @default 5000
   */
  everyMs: z.number().int().min(1000).default(5000),
});
export type CheckpointCadence = z.infer<typeof CheckpointCadence>;

/** Schedule names: they become Cloud Scheduler job ids (`shardrun-<name>`), URL segments and store keys. */
export const SCHEDULE_NAME_PATTERN = /^[a-z][a-z0-9-]{0,47}$/;
/** `shardrun-reconcile` is the Cloud Scheduler job that drives reconcile, so no schedule may take its name. */
export const RESERVED_SCHEDULE_NAMES: ReadonlySet<string> = new Set(["reconcile"]);

// Cloud Scheduler takes unix-cron: five fields of numbers, `*`, ranges, steps and lists, with
// month and weekday names. croner knows more (seconds, L, W, #, ?, @daily): refuse what Cloud
// Scheduler would, so that a schedule that fires locally also syncs.
const CRON_MINUTE_HOUR_DAY = /^[0-9*,/-]+$/;
const CRON_MONTH_WEEKDAY = /^(?:[0-9*,/-]|[A-Za-z]{3})+$/;

/** Why a cron expression is not one Cloud Scheduler and croner both accept, or null. */
export function cronProblem(cron: string): string | null {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) return `Expected five fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  const bad = fields.findIndex((f, i) => !(i < 3 ? CRON_MINUTE_HOUR_DAY : CRON_MONTH_WEEKDAY).test(f));
  if (bad >= 0) return `Field ${bad + 1} ("${fields[bad]}") may hold only numbers, *, ranges (a-b), steps (/n), lists (a,b) and JAN-DEC or SUN-SAT names`;
  try {
    new Cron(cron, { mode: "5-part", paused: true });
  } catch (e) {
    return e instanceof Error ? e.message.replace(/^CronPattern: /, "") : String(e);
  }
  return null;
}

/** True for a time zone of the tz database that this runtime knows ("Europe/Paris", "Etc/UTC"). */
export function isTimeZone(name: string): boolean {
  // Intl also takes offsets like "+01:00"; Cloud Scheduler takes only tz database names.
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(name)) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export const ScheduleSpec = z.strictObject({
  /** Unique across all jobs: Cloud Scheduler's job is `shardrun-<name>`, the fire endpoint `/v1/schedules/<name>:fire`. */
  name: z
    .string()
    .regex(SCHEDULE_NAME_PATTERN, "Expected a lowercase name of letters, digits and dashes, starting with a letter (at most 48)")
    .refine((n) => !RESERVED_SCHEDULE_NAMES.has(n), { message: `"reconcile" is reserved for the reconcile job` }),
  /** unix-cron, five fields, e.g. "0 2 * * *" (02:00 every day). */
  cron: z.string().superRefine((cron, ctx) => {
    const problem = cronProblem(cron);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  /** IANA time zone the cron is read in. @default "Etc/UTC" (Cloud Scheduler's default) */
  timeZone: z
    .string()
    .refine(isTimeZone, { message: 'Expected an IANA time zone name like "Etc/UTC" or "Europe/Paris"' })
    .default("Etc/UTC"),
  /** Run arguments, checked against the job's `args` schema. @default {} */
  args: z.record(z.string(), z.unknown()).default({}),
  /** A paused schedule does not fire: `schedules sync` pauses its Cloud Scheduler job. @default false */
  paused: z.boolean().default(false),
  description: z.string().max(300).optional(),
});
export type Schedule = z.infer<typeof ScheduleSpec>;
export type ScheduleDefinition = z.input<typeof ScheduleSpec>;

const fn = (what: string) =>
  z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", { message: `Expected ${what} to be a function` });
// On data, not `instanceof z.ZodType`: a job bundled with its own copy of zod is still a zod schema.
const zodSchema = z.custom<z.ZodType>(isZodSchema, { message: "Expected a zod schema (z.object(...))" });

function isZodSchema(v: unknown): boolean {
  return typeof v === "object" && v !== null && typeof (v as { safeParse?: unknown }).safeParse === "function" && "_zod" in v;
}

/**
 * The keys of an object schema (`z.object({...})`), from any copy of zod; undefined for other
 * schemas. Read on data because the job's schemas come from its bundle's copy of zod.
 */
export function objectSchemaKeys(schema: unknown): string[] | undefined {
  if (!isZodSchema(schema)) return undefined;
  const def = (schema as { _zod: { def?: { type?: unknown } } })._zod.def;
  const shape = (schema as { shape?: unknown }).shape;
  return def?.type === "object" && typeof shape === "object" && shape !== null ? Object.keys(shape) : undefined;
}

export const JobDefinitionSchema = z.strictObject({
  name: z.string().regex(JOB_NAME_PATTERN, "Expected a lowercase name of letters, digits and dashes, starting with a letter (at most 48)"),
  description: z.string().optional(),
  item: zodSchema,
  args: zodSchema.optional(),
  source: fn("source"),
  key: fn("key").optional(),
  weight: fn("weight").optional(),
  order: PlanOrder.default("source"),
  cost: fn("cost").optional(),
  shard: ShardPolicy.default({ itemsPerShard: 100 }),
  concurrency: z.number().int().min(1).max(1000).default(4),
  retry: RetryPolicy.default(RetryPolicy.parse({})),
  checkpoint: CheckpointCadence.default(CheckpointCadence.parse({})),
  /** Default task count for a launch; `--tasks` overrides. */
  tasks: z.number().int().min(1).max(10_000).optional(),
  steps: z.enum(["checkpoint", "eager"]).default("checkpoint"),
  itemTimeoutMs: z.number().int().min(1).max(7 * 24 * 3600 * 1000).optional(),
  crashLimit: z.number().int().min(1).max(100).default(2),
  limits: z.record(z.string(), LimitSpec).default({}),
  maxFailedItems: FailureTolerance.optional(),
  budgets: Budgets.default({}),
  schedules: z.array(ScheduleSpec).default([]),
  run: fn("run"),
}).superRefine((def, ctx) => {
  const seen = new Set<string>();
  def.schedules.forEach((s, i) => {
    if (seen.has(s.name)) ctx.addIssue({ code: "custom", path: ["schedules", i, "name"], message: `Duplicate schedule name "${s.name}"` });
    seen.add(s.name);
    // Checked now rather than at 2 a.m. when the schedule fires.
    if (!def.args) {
      const extra = Object.keys(s.args)[0];
      if (extra !== undefined) ctx.addIssue({ code: "custom", path: ["schedules", i, "args", extra], message: "The job takes no arguments (it has no `args` schema)" });
      return;
    }
    let parsed: ReturnType<z.ZodType["safeParse"]>;
    try {
      parsed = def.args.safeParse(s.args);
    } catch {
      return; // an async schema: checked when the schedule fires
    }
    if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", path: ["schedules", i, "args", ...issue.path], message: issue.message });
  });
});

export interface JobSourceContext {
  signal: AbortSignal;
}

export interface JobDefinition<I, O, A> {
  /** Explicit name: runs record it, and the worker finds the job by it. */
  name: string;
  description?: string;
  /** Schema every item must pass before `run` sees it; a failing item is failed, not a crash. */
  item: z.ZodType<I>;
  /** Schema of the run's arguments (`--arg key=value`). */
  args?: z.ZodType<A>;
  /** The items of a run, read once at plan time and streamed into shards. */
  source: (args: A, ctx: JobSourceContext) => AsyncIterable<unknown> | Iterable<unknown>;
  /** A stable key per item (must be unique in a run). @default the item's index */
  key?: (item: I) => string;
  /** Weight for sharding, e.g. bytes. @default 1 */
  weight?: (item: I) => number;
  /**
   * The order the planner cuts items into shards. "source": as the source yields them.
   * "heaviest-first": sorted by `cost`, heaviest first (ties keep the source order), so that
   * shard 0 holds the heaviest items and each shard starts with its heaviest: long items start
   * early instead of holding up the end of the run. Items keep their index in the source order
   * (`ctx.itemIndex`, the `i` of outputs). The planner sorts in bounded memory (a spool file and
   * typed arrays); a million items cost ~50 MB more than in source order.
   * @default "source"
   * @example order: "heaviest-first", cost: (item) => item.pages
   */
  order?: PlanOrder;
  /**
   * The job's estimate of what an item costs to run: its duration, or its spend. Only its order
   * matters (used by `order: "heaviest-first"`). An item that fails its schema, or whose cost is
   * not a finite number from 0 up, costs 0.
   * @default `weight`, else 1 for every item
   */
  cost?: (item: I) => number;
  /** @default { itemsPerShard: 100 } */
  shard?: ShardPolicy;
  /** Items run at once inside one task (p-limit). @default 4 */
  concurrency?: number;
  /** Item retries inside a task. @default { attempts: 3, minDelayMs: 1000, maxDelayMs: 60000, factor: 2, jitter: true } */
  retry?: Partial<RetryPolicy>;
  /** @default { everyItems: 50, everyMs: 5000 } */
  checkpoint?: Partial<CheckpointCadence>;
  /** Default task count of a launch. @default min(shards, 10) */
  tasks?: number;
  /** How `ctx.step` results are recorded (see StepOptions.record). @default "checkpoint" */
  steps?: StepRecording;
  /**
   * An item attempt running longer than this is aborted through `ctx.signal`; one that ignores the
   * abort is failed with reason `timeout` and its slot given up. `--item-timeout` overrides it.
   * @default no limit
   * @example itemTimeoutMs: 5 * 60_000
   */
  itemTimeoutMs?: number;
  /**
   * An item in flight when its task process died this many times, running alone, fails with reason
   * `crashed` and the rest of its shard goes on (poison items: exits, out of memory, hangs).
   * @default 2
   */
  crashLimit?: number;
  /**
   * Run-wide limits for `ctx.limit(name, fn)`, e.g. `{ model: { perSecond: 20, concurrent: 8 } }`.
   * @default {}
   */
  limits?: Record<string, LimitSpec>;
  /**
   * Failure tolerance: when more items than this have failed (a count, or a percentage of the
   * run's items like "2%"), the run stops and ends `failed` instead of working on. `--max-failed-items`
   * overrides it. @default no limit
   */
  maxFailedItems?: number | string;
  /**
   * Spending limits: `{ item, shard, run }`, each `{ tokens, usd, ms }`. An item over its budget
   * fails with a budget reason; a shard or run over its budget stops taking items and the run
   * ends `budget_exhausted` (rerun with a raised budget to go on). Run flags override `run`.
   * @default {}
   */
  budgets?: Budgets;
  /**
   * Cron schedules that start runs of this job (`shardrun serve` fires them; `shardrun schedules
   * sync` makes Cloud Scheduler jobs for them). Names are unique across all jobs.
   * @default []
   * @example schedules: [{ name: "docs-nightly", cron: "0 2 * * *", timeZone: "Etc/UTC", args: { limit: 500 } }]
   */
  schedules?: ScheduleDefinition[];
  /** Does one item; returns its output record (anything JSON). */
  run: (item: I, ctx: JobContext) => Promise<O> | O;
}

export interface Job<I = unknown, O = unknown, A = unknown> {
  readonly kind: "shardrun.job";
  readonly name: string;
  readonly description?: string;
  readonly item: z.ZodType<I>;
  readonly args?: z.ZodType<A>;
  readonly source: (args: A, ctx: JobSourceContext) => AsyncIterable<unknown> | Iterable<unknown>;
  readonly key?: (item: I) => string;
  readonly weight?: (item: I) => number;
  readonly order: PlanOrder;
  readonly cost?: (item: I) => number;
  readonly shard: ShardPolicy;
  readonly concurrency: number;
  readonly retry: RetryPolicy;
  readonly checkpoint: CheckpointCadence;
  readonly tasks?: number;
  readonly steps: StepRecording;
  readonly itemTimeoutMs?: number;
  readonly crashLimit: number;
  readonly limits: Record<string, LimitSpec>;
  readonly maxFailedItems?: number | string;
  readonly budgets: Budgets;
  readonly schedules: readonly Schedule[];
  readonly run: (item: I, ctx: JobContext) => Promise<O> | O;
}

/**
 * Defines a job. Throws `InvalidInputError` naming the field path when the definition is wrong,
 * e.g. `concurrency: Too small: expected number to be >=1`.
 *
 * @example
 * export default defineJob({
 *   name: "echo",
 *   item: z.object({ text: z.string() }),
 *   source: () => [{ text: "a" }, { text: "b" }],
 *   run: async (item) => ({ echoed: item.text }),
 * });
 */
export function defineJob<I, O, A = Record<string, never>>(definition: JobDefinition<I, O, A>): Job<I, O, A> {
  const parsed = JobDefinitionSchema.safeParse(definition);
  if (!parsed.success) {
    const name = typeof (definition as { name?: unknown })?.name === "string" ? ` "${(definition as { name: string }).name}"` : "";
    throw new InvalidInputError(`invalid job definition${name}: ${formatZodError(parsed.error)}`);
  }
  return Object.freeze({ kind: "shardrun.job", ...(parsed.data as unknown as Omit<Job<I, O, A>, "kind">) });
}

export function isJob(value: unknown): value is Job {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "shardrun.job";
}
