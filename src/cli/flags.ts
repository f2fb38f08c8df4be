/**
 * The flags commands share, and how run-settings flags become settings: commander collects the
 * text, core/settings.ts's schemas (the same the API's bodies are) decide what it means. A
 * refused value is one line naming the flag, what was expected and what was given, e.g.
 * `--tasks: expected a whole number from 1 to 10000, got "-1"`.
 */
import { Option, type Command } from "commander";
import type { z } from "zod";
import { UsageError } from "../core/errors.js";
import { RerunSettings, SETTING_DEFAULTS, StartSettings, firstIssue, settingFields } from "../core/settings.js";

/** `--store`, `--project`, `--region`: where runs live and where Cloud Run is. */
export interface StoreFlags {
  store?: string;
  project?: string;
  region?: string;
}

/** Flags of the commands that launch tasks (`run`, `rerun`). */
export interface LaunchFlags extends StoreFlags {
  local?: boolean;
  json?: boolean;
  tasks?: string;
  parallelism?: string;
  maxLaunches?: string;
  killGrace?: string;
  budgetTokens?: string;
  budgetUsd?: string;
  budgetMinutes?: string;
}

export interface RunFlags extends LaunchFlags {
  shards?: string;
  itemsPerShard?: string;
  taskTimeout?: string;
  maxRetries?: string;
  maxFailedItems?: string;
  itemTimeout?: string;
  crashLimit?: string;
  concurrency?: string;
  maxItems?: string;
  maxShards?: string;
  items?: string;
  arg: string[];
}

export interface RerunFlags extends LaunchFlags {
  failedItems?: boolean;
  upgrade?: boolean;
  repair?: boolean;
  reason?: string;
}

/** Each setting's flag, by the path of the setting in the schemas. */
const FLAG_OF: Record<string, string> = {
  shards: "--shards",
  itemsPerShard: "--items-per-shard",
  tasks: "--tasks",
  parallelism: "--parallelism",
  taskTimeoutSeconds: "--task-timeout",
  maxRetries: "--max-retries",
  maxLaunches: "--max-launches",
  maxFailedItems: "--max-failed-items",
  "budgets.tokens": "--budget-tokens",
  "budgets.usd": "--budget-usd",
  "budgets.minutes": "--budget-minutes",
  budgetTokens: "--budget-tokens",
  budgetUsd: "--budget-usd",
  budgetMinutes: "--budget-minutes",
  killGraceSeconds: "--kill-grace",
  reasons: "--reason",

  itemTimeoutSeconds: "--item-timeout",
  crashLimit: "--crash-limit",
  concurrency: "--concurrency",
  maxItems: "--max-items",
  maxShards: "--max-shards",
};

export function addStoreOptions(cmd: Command): Command {
  return cmd
    .option("--store <dir|url>", "where runs live: a folder, file:///path or gs://bucket/prefix (default: SHARDRUN_STORE_URL, else ./.shardrun)")
    .option("--project <project>", "Google Cloud project (or SHARDRUN_PROJECT, GOOGLE_CLOUD_PROJECT, manifests/shardrun.json)")
    .option("--region <region>", "Cloud Run region (or SHARDRUN_REGION, manifests/shardrun.json)");
}

/** The launch flags of `run` and `rerun`. */
export function addLaunchOptions(cmd: Command, o: { maxLaunchesDefault: boolean }): Command {
  return addStoreOptions(cmd)
    .option("--local", "run tasks as local processes that behave like Cloud Run Jobs tasks (without it: Cloud Run Jobs, which needs a gs:// store)")
    .option("--tasks <n>", "tasks per launch (1-10000; default: one per shard, at most 10); fewer tasks than shards claim shards dynamically")
    .option("--parallelism <n>", "tasks running at once (1-10000; default: all)")
    .option("--max-launches <n>", `launches before giving up on unfinished shards (1-1000${o.maxLaunchesDefault ? `; default ${SETTING_DEFAULTS.maxLaunches}` : ""})`)
    .option("--budget-tokens <n>", "run budget in tokens (ctx.usage); the run stops at it, budget_exhausted")
    .option("--budget-usd <dollars>", "run budget in dollars, e.g. 12.50")
    .option("--budget-minutes <m>", "run budget in wall time since the run was planned")
    .option("--kill-grace <seconds>", `local: seconds from SIGTERM to SIGKILL at a task timeout (0-3600; default ${SETTING_DEFAULTS.killGraceSeconds})`)
    .addOption(new Option("--json", "print the final status as JSON on stdout (no progress bars)"));
}

/** The flags of commands that only read a run, and may print it as JSON. */
export interface ReadFlags extends StoreFlags {
  json?: boolean;
}

/** Flag text as the schemas take it: numbers as numbers, anything else as the text (which they refuse by name). */
function value(text: string | undefined): number | string | undefined {
  if (text === undefined) return undefined;
  return /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text;
}

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Parses with a settings schema; a refusal names the flag and quotes its text. */
function parseSettings<S extends z.ZodType>(schema: S, raw: Record<string, unknown>, texts: Record<string, string | undefined>): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = firstIssue(parsed.error);
  const key = issue.path.join(".");
  // An element of a list flag (--reason a,b) is named by the flag.
  const flag = FLAG_OF[key] ?? FLAG_OF[String(issue.path[0])] ?? key;
  const text = texts[key];
  throw new UsageError(`${flag}: ${issue.message}${text !== undefined && !issue.conflict ? `, got "${text}"` : ""}`);
}

/** `run`'s settings, parsed by the schema of `POST /v1/jobs/{job}/runs`. */
export function startSettingsFromFlags(f: RunFlags): StartSettings {
  const budgets = defined({ tokens: value(f.budgetTokens), usd: value(f.budgetUsd), minutes: value(f.budgetMinutes) });
  const raw = defined({
    shards: value(f.shards),
    itemsPerShard: value(f.itemsPerShard),
    tasks: value(f.tasks),
    parallelism: value(f.parallelism),
    taskTimeoutSeconds: value(f.taskTimeout),
    maxRetries: value(f.maxRetries),
    maxLaunches: value(f.maxLaunches),
    // A count is a number; "2%" stays text.
    maxFailedItems: f.maxFailedItems !== undefined && /^\d+$/.test(f.maxFailedItems) ? Number(f.maxFailedItems) : f.maxFailedItems,
    budgets: Object.keys(budgets).length ? budgets : undefined,
    itemTimeoutSeconds: value(f.itemTimeout),
    crashLimit: value(f.crashLimit),
    concurrency: value(f.concurrency),
    maxItems: value(f.maxItems),
    maxShards: value(f.maxShards),
  });
  return parseSettings(StartSettings, raw, {
    maxItems: f.maxItems,
    maxShards: f.maxShards,
    itemTimeoutSeconds: f.itemTimeout,
    crashLimit: f.crashLimit,
    concurrency: f.concurrency,
    shards: f.shards,
    itemsPerShard: f.itemsPerShard,
    tasks: f.tasks,
    parallelism: f.parallelism,
    taskTimeoutSeconds: f.taskTimeout,
    maxRetries: f.maxRetries,
    maxLaunches: f.maxLaunches,
    maxFailedItems: f.maxFailedItems,
    "budgets.tokens": f.budgetTokens,
    "budgets.usd": f.budgetUsd,
    "budgets.minutes": f.budgetMinutes,
  });
}

/** `rerun`'s settings, parsed by the schema of `POST /v1/runs/{id}:rerun`. */
export function rerunSettingsFromFlags(f: RerunFlags): RerunSettings {
  const raw = defined({
    failedItems: f.failedItems,
    upgrade: f.upgrade,
    repair: f.repair,
    reasons: f.reason === undefined ? undefined : f.reason.split(",").map((r) => r.trim()).filter(Boolean),
    tasks: value(f.tasks),
    parallelism: value(f.parallelism),
    maxLaunches: value(f.maxLaunches),
    budgetTokens: value(f.budgetTokens),
    budgetUsd: value(f.budgetUsd),
    budgetMinutes: value(f.budgetMinutes),
  });
  const reasonTexts = Object.fromEntries((f.reason ?? "").split(",").map((r, k) => [`reasons.${k}`, r.trim()]));
  return parseSettings(RerunSettings, raw, { tasks: f.tasks, parallelism: f.parallelism, maxLaunches: f.maxLaunches, budgetTokens: f.budgetTokens, budgetUsd: f.budgetUsd, budgetMinutes: f.budgetMinutes, reasons: f.reason, ...reasonTexts });
}

/** `--kill-grace`: a local launcher setting, checked by its field of the settings schema. */
export function killGraceFromFlags(f: LaunchFlags): number | undefined {
  if (f.killGrace === undefined) return undefined;
  const parsed = settingFields.killGraceSeconds.safeParse(value(f.killGrace));
  if (!parsed.success) throw new UsageError(`--kill-grace: ${firstIssue(parsed.error).message}, got "${f.killGrace}"`);
  return parsed.data;
}

/** `--arg key=value` pairs; values stay strings (the job's zod schema coerces them). */
export function keyValues(list: readonly string[], flag = "--arg"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of list) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`${flag}: expected key=value, got "${pair}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Collects a repeatable flag's values. */
export const collect = (v: string, all: string[]) => [...all, v];

/** A port number flag or variable. */
export function portNumber(text: string, name: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new UsageError(`${name}: expected a port number from 0 to 65535, got "${text}"`);
  return n;
}

/** A whole number flag outside the run settings (`--limit`, `--reconcile-every`). */
export function wholeFlag(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw new UsageError(`${flag}: expected a whole number from ${min} to ${max}, got "${text}"`);
  return n;
}
