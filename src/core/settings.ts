/**
 * Run settings: one zod schema for every edge that takes them. `shardrun run` and `rerun` build
 * an object from their flags and parse it with these schemas; the API's bodies of
 * `POST /v1/jobs/{job}/runs` and `POST /v1/runs/{id}:rerun` are these schemas (plus `args`). So a
 * value refused in one place is refused in all, with the same words, before anything is written.
 *
 * Messages are written to read after a field name at either edge (`--tasks: …` on the command
 * line, `body: tasks: …` in an API error); each edge adds the value it got, in its own syntax.
 */
import { z } from "zod";
import type { Budget } from "./budget.js";

/** Largest whole number a setting takes when it has no range of its own. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/** A whole number in a range, refused with one message whatever is wrong with it (type, fraction, range). */
export function wholeNumber(min: number, max = UNBOUNDED) {
  const error = max < UNBOUNDED ? `expected a whole number from ${min} to ${max}` : `expected a whole number of ${min} or more`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

const dollars = z.number({ error: "expected an amount of dollars above 0 like 12.50" }).positive({ error: "expected an amount of dollars above 0 like 12.50" });

const TOLERANCE_EXPECTED = "expected a count like 5 or a percentage like 2%";

/**
 * Failure tolerance: a count of items (5) or a share of the run ("2%", at most 100%). Beyond it
 * the run is cancelled and ends `failed`. Used by job definitions too (`maxFailedItems`).
 */
export const FailureTolerance = z
  .union(
    [
      z.number({ error: TOLERANCE_EXPECTED }).int({ error: TOLERANCE_EXPECTED }).min(0, { error: TOLERANCE_EXPECTED }),
      z.string({ error: TOLERANCE_EXPECTED }).regex(/^\d+(\.\d+)?%$/, { error: TOLERANCE_EXPECTED }),
    ],
    { error: TOLERANCE_EXPECTED },
  )
  // A run recorded with 150% could never be read back (run.json allows 0–100): refuse it here.
  .refine((v) => typeof v === "number" || !v.endsWith("%") || !(Number(v.slice(0, -1)) > 100), { error: "expected a percentage of at most 100%" });

/** `5` -> { count: 5 }; `"2%"` -> { percent: 2 }. */
export function parseTolerance(value: number | string): { count?: number; percent?: number } {
  return typeof value === "number" ? { count: value } : { percent: Number(value.slice(0, -1)) };
}

/** Each setting's schema, shared by the start and the rerun settings below. */
export const settingFields = {
  shards: wholeNumber(1, 100_000).describe("Split the items into this many shards (not with itemsPerShard)."),
  itemsPerShard: wholeNumber(1).describe("Or: this many items per shard."),
  tasks: wholeNumber(1, 10_000).describe("Tasks per launch; fewer tasks than shards claim shards dynamically."),
  parallelism: wholeNumber(1, 10_000).describe("Tasks running at once."),
  taskTimeoutSeconds: wholeNumber(1, 7 * 24 * 3600).describe("Task timeout in seconds; a task stops taking items shortly before it."),
  maxRetries: wholeNumber(0, 10).describe("Retries per task after a failed attempt."),
  maxLaunches: wholeNumber(1, 1000).describe("Launches before giving up on unfinished shards."),
  maxFailedItems: FailureTolerance.describe('Failure tolerance: a count (5) or a share ("2%", at most 100%).'),
  budgetTokens: wholeNumber(1).describe("Run budget in tokens (ctx.usage)."),
  budgetUsd: dollars.describe("Run budget in dollars."),
  budgetMinutes: wholeNumber(1).describe("Run budget in wall time since the run was planned."),
  itemTimeoutSeconds: wholeNumber(1, 7 * 24 * 3600).describe("An item attempt running longer is aborted (ctx.signal), and failed `timeout` if it ignores that."),
  crashLimit: wholeNumber(1, 100).describe("Crashes of a task process while an item was in flight before the item fails `crashed` (poison items)."),
  concurrency: wholeNumber(1, 1000).describe("Items at once in each task (default: the job's)."),
  maxItems: wholeNumber(1, 1_000_000_000).describe("Most items this run may plan; a plan over it stops with nothing written (default: SHARDRUN_MAX_ITEMS, else 10,000,000)."),
  maxShards: wholeNumber(1, 1_000_000).describe("Most shards this run may have, rerun rounds included (default: SHARDRUN_MAX_SHARDS, else 200,000)."),
  /** Local launcher only: seconds from SIGTERM to SIGKILL at a task timeout. */
  killGraceSeconds: wholeNumber(0, 3600).describe("Local tasks: seconds from SIGTERM to SIGKILL at a timeout."),
};

/** Defaults of a new run's settings, for the schemas and for help texts. */
export const SETTING_DEFAULTS = { taskTimeoutSeconds: 3600, maxRetries: 3, maxLaunches: 5, killGraceSeconds: 10 } as const satisfies Partial<Record<keyof typeof settingFields, number>>;

export const RunBudgetSettings = z
  .strictObject({
    tokens: settingFields.budgetTokens.optional(),
    usd: settingFields.budgetUsd.optional(),
    minutes: settingFields.budgetMinutes.optional(),
  })
  .describe("Run-level budget limits; the run stops as budget_exhausted at the first one reached.");
export type RunBudgetSettings = z.infer<typeof RunBudgetSettings>;

/** The settings of a new run, without the job's arguments (the API body adds `args`). */
export const startSettingsShape = {
  shards: settingFields.shards.optional(),
  itemsPerShard: settingFields.itemsPerShard.optional(),
  tasks: settingFields.tasks.optional(),
  parallelism: settingFields.parallelism.optional(),
  taskTimeoutSeconds: settingFields.taskTimeoutSeconds.default(SETTING_DEFAULTS.taskTimeoutSeconds),
  maxRetries: settingFields.maxRetries.default(SETTING_DEFAULTS.maxRetries),
  maxLaunches: settingFields.maxLaunches.default(SETTING_DEFAULTS.maxLaunches),
  budgets: RunBudgetSettings.optional(),
  maxFailedItems: settingFields.maxFailedItems.optional(),
  itemTimeoutSeconds: settingFields.itemTimeoutSeconds.optional(),
  crashLimit: settingFields.crashLimit.optional(),
  concurrency: settingFields.concurrency.optional(),
  maxItems: settingFields.maxItems.optional(),
  maxShards: settingFields.maxShards.optional(),
};

/** Shard count and items per shard are two ways to say one thing. */
export function oneShardPolicy(s: { shards?: number | undefined; itemsPerShard?: number | undefined }): boolean {
  return s.shards === undefined || s.itemsPerShard === undefined;
}
export const ONE_SHARD_POLICY = { error: "give a shard count or items per shard, not both", path: ["itemsPerShard"], params: { conflict: true } };

export const StartSettings = z.strictObject(startSettingsShape).refine(oneShardPolicy, ONE_SHARD_POLICY);
export type StartSettings = z.infer<typeof StartSettings>;

/** The settings of a rerun: what to run again, and the launch and budget settings it may change. */
export const RerunSettings = z.strictObject({
  failedItems: z.boolean().default(false).describe("Rerun exactly the failed items, re-planned into new shards."),
  upgrade: z.boolean().default(false).describe("Build the job from its source as it is now and run that; by default a rerun runs the code the run recorded."),
  reasons: z
    .array(z.enum(["error", "timeout", "crashed", "schema", "budget", "non_retriable"], { error: "expected reasons among error, timeout, crashed, schema, budget, non_retriable" }))
    .optional()
    .describe("With failedItems: only failures of these reasons (default: all but non_retriable)."),
  repair: z.boolean().default(false).describe("First take damaged output parts out of their checkpoints (and rebuild checkpoints that do not add up), so that exactly their items run again."),
  tasks: settingFields.tasks.optional(),
  parallelism: settingFields.parallelism.optional(),
  maxLaunches: settingFields.maxLaunches.optional(),
  budgetTokens: settingFields.budgetTokens.optional().describe("Raise (or set) the run budget in tokens."),
  budgetUsd: settingFields.budgetUsd.optional().describe("Raise (or set) the run budget in dollars."),
  budgetMinutes: settingFields.budgetMinutes.optional().describe("Raise (or set) the run budget in minutes."),
});
export type RerunSettings = z.infer<typeof RerunSettings>;

/** The shard policy the settings ask for, if any. */
export function shardPolicyOf(s: Pick<StartSettings, "shards" | "itemsPerShard">): { count: number } | { itemsPerShard: number } | undefined {
  return s.shards !== undefined ? { count: s.shards } : s.itemsPerShard !== undefined ? { itemsPerShard: s.itemsPerShard } : undefined;
}

/** The plan limits the settings ask for (only those given). */
export function limitsOf(s: Pick<StartSettings, "maxItems" | "maxShards">): { maxItems?: number; maxShards?: number } {
  return { ...(s.maxItems !== undefined ? { maxItems: s.maxItems } : {}), ...(s.maxShards !== undefined ? { maxShards: s.maxShards } : {}) };
}

/** Budget limits from settings (minutes become ms); undefined when none is set. */
export function budgetOf(b: { tokens?: number | undefined; usd?: number | undefined; minutes?: number | undefined } | undefined): Budget | undefined {
  if (!b) return undefined;
  const out: Budget = {
    ...(b.tokens !== undefined ? { tokens: b.tokens } : {}),
    ...(b.usd !== undefined ? { usd: b.usd } : {}),
    ...(b.minutes !== undefined ? { ms: b.minutes * 60_000 } : {}),
  };
  return Object.keys(out).length ? out : undefined;
}

/** A settings problem: the field path as the schema names it, and the message. */
export interface SettingsIssue {
  path: string[];
  message: string;
  input?: unknown;
  /** Two settings that exclude each other: no one value is at fault, so none is quoted. */
  conflict?: boolean;
}

/** The first problem of a failed parse, with the input at fault (zod keeps it with `reportInput`). */
export function firstIssue(error: z.ZodError): SettingsIssue {
  const issue = error.issues[0];
  if (!issue) return { path: [], message: "invalid settings" };
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys" && issue.keys[0] !== undefined) return { path: [...path, issue.keys[0]], message: "unknown field" };
  const conflict = issue.code === "custom" && (issue.params as { conflict?: boolean } | undefined)?.conflict === true;
  return { path, message: issue.message, ...("input" in issue ? { input: issue.input } : {}), ...(conflict ? { conflict } : {}) };
}
