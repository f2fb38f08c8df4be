/**
 * The scheduler service's API as zod schemas: every body, query, path parameter and answer. The
 * routes (routes-*.ts) declare them with `createRoute`, which makes them both the validation of
 * each request and the OpenAPI document (`/openapi.json`), so the two cannot drift apart. The
 * run-settings fields of the bodies are core/settings.ts's, the same the CLI parses flags with.
 */
import { z } from "zod";
import { Budgets, Usage } from "../core/budget.js";
import { RUN_ID_PATTERN } from "../core/ids.js";
import { JOB_NAME_PATTERN, SCHEDULE_NAME_PATTERN } from "../core/job.js";
import { LISTED_STATES, RUN_STATES } from "../core/states.js";
import { ONE_SHARD_POLICY, RerunSettings, firstIssue, oneShardPolicy, startSettingsShape } from "../core/settings.js";
import type { FailedItemView, RunStatus } from "../core/status.js";
import type { ReconcileResult } from "../orchestrator/reconcile.js";
import type { RunSummary } from "../orchestrator/run-list.js";
import type { FireResult as FireScheduleResult } from "../schedules/fire.js";
import { HttpError } from "./http-error.js";

export const RunId = z.string().regex(RUN_ID_PATTERN, "Expected a run id like 20261122-020000-summarize-docs-ab12");
export const JobName = z.string().regex(JOB_NAME_PATTERN, "Expected a job name of lowercase letters, digits and dashes, starting with a letter");
export const ScheduleName = z.string().regex(SCHEDULE_NAME_PATTERN, "Expected a schedule name of lowercase letters, digits and dashes, starting with a letter");

const count = (min: number, max: number) => z.number().int().min(min).max(max);
/** A date (2026-11-22) or a date-time with an offset (2026-11-22T02:00:00Z). */
const Instant = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);
/** Query strings carry text: whole numbers are parsed from it, not coerced (no "" -> 0). */
const queryInt = (min: number, max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, "Expected a whole number")
    .transform(Number)
    .pipe(count(min, max))
    .optional()
    .transform((v) => v ?? fallback);

export const StartRunBody = z
  .strictObject({
    args: z.record(z.string(), z.unknown()).default({}).describe("Job arguments, checked by the job's args schema."),
    ...startSettingsShape,
  })
  .refine(oneShardPolicy, ONE_SHARD_POLICY)
  .meta({ id: "StartRunRequest" });
export type StartRunBody = z.infer<typeof StartRunBody>;

export const RerunBody = RerunSettings.meta({ id: "RerunRequest" });
export type RerunBody = z.infer<typeof RerunBody>;

/** A run's state, in the words every reader uses (core/states.ts). */
export const RunStateSchema = z.enum(RUN_STATES).meta({ id: "RunState" });
/** A state in a list of runs: a run state, or `unreadable`. */
export const ListedStateSchema = z.enum(LISTED_STATES).meta({ id: "ListedState" });

export const ListRunsQuery = z.strictObject({
  job: JobName.optional(),
  state: ListedStateSchema.optional(),
  since: Instant.optional().describe("Runs created at or after this date or date-time."),
  until: Instant.optional().describe("Runs created before this date or date-time."),
  pageSize: queryInt(1, 500, 50),
  pageToken: z.string().max(200).optional(),
});

export const DeadLetterQuery = z.strictObject({
  pageSize: queryInt(1, 10_000, 1000),
  pageToken: z.string().regex(/^\d{1,9}$/, "Expected a page token from a previous answer").optional(),
});

export const EmptyBody = z.strictObject({});

/** Cloud Scheduler's `X-CloudScheduler-ScheduleTime`: RFC 3339, e.g. 2026-11-22T02:00:00Z. */
export const ScheduleTime = z.iso.datetime({ offset: true });

// ---- answers ----

export const LaunchStatusSchema = z.object({
  n: z.number().int(),
  execution: z.string().optional(),
  taskCount: z.number().int(),
  state: z.enum(["pending", "running", "succeeded", "failed", "cancelled"]),
  tasks: z.object({ running: z.number().int(), succeeded: z.number().int(), failed: z.number().int() }).optional(),
  taskList: z
    .array(
      z.object({
        index: z.number().int(),
        state: z.string(),
        attempts: z.number().int(),
        lastExitCode: z.number().int().optional(),
        timeouts: z.number().int().optional().describe("Attempts ended by the task timeout."),
        lastExit: z.string().optional().describe("How the last attempt ended, in words."),
      }),
    )
    .optional()
    .describe("Per task, when the launcher can tell."),
  url: z.string().optional(),
  createdAt: z.string().optional(),
  finishedAt: z.string().optional(),
});

export const ShardStatusSchema = z.object({
  id: z.string(),
  round: z.number().int(),
  state: z.enum(["pending", "running", "done"]),
  items: z.number().int(),
  done: z.number().int(),
  failed: z.number().int(),
  epoch: z.number().int(),
  owner: z.string().optional(),
});

/** The status object: the same as `shardrun status --json`. */
export const RunStatusSchema = z.object({
  runId: z.string(),
  job: z.string(),
  state: RunStateSchema,
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  reason: z.string().optional(),
  items: z.object({ total: z.number().int(), succeeded: z.number().int(), failed: z.number().int(), pending: z.number().int() }),
  shards: z.object({ total: z.number().int(), done: z.number().int(), running: z.number().int() }),
  launches: z.array(LaunchStatusSchema),
  executions: z.number().int(),
  usage: Usage,
  budgets: Budgets,
  overshoot: Usage.optional().describe("Spend past the run budget, when a budget stop overshot it."),
  shardList: z.array(ShardStatusSchema).describe("Per shard; empty for runs of more than 2,000 shards."),
}).meta({ id: "RunStatus" });

export const RunSummarySchema = z.object({
  runId: z.string(),
  job: z.string(),
  state: ListedStateSchema,
  createdAt: z.string(),
  finishedAt: z.string().optional().describe("When its last drive ended; absent while it is live."),
  items: z.number().int(),
  failed: z.number().int().optional().describe("Failed items, once the run has finished."),
  trigger: z.string(),
  reason: z.string().optional().describe("Unreadable runs: why the run could not be read."),
  object: z.string().optional().describe("Unreadable runs: the object that could not be read."),
}).meta({ id: "RunSummary" });

export const RunsPage = z.object({ runs: z.array(RunSummarySchema), nextPageToken: z.string().optional() }).meta({ id: "RunsPage" });

export const FailedItemSchema = z.object({
  i: z.number().int(),
  key: z.string(),
  shard: z.string(),
  error: z.string(),
  attempts: z.number().int(),
  reason: z.string(),
  stack: z.string().optional(),
  lastLog: z.string().optional().describe("The last log line the item wrote before it failed."),
}).meta({ id: "FailedItem" });

export const DeadLetterPage = z.object({
  runId: z.string(),
  total: z.number().int(),
  items: z.array(FailedItemSchema),
  nextPageToken: z.string().optional(),
}).meta({ id: "DeadLetterPage" });

export const FireResult = z.object({
  runId: z.string(),
  created: z.boolean().describe("True only for the fire that started the run; a retry of the same time gets false."),
  job: z.string(),
  scheduledTime: z.string(),
  launchError: z.string().optional().describe("The run is planned but its first launch failed; reconcile launches it."),
}).meta({ id: "FireResult" });

export const ReconcileResultSchema = z.object({
  checked: z.number().int().describe("Runs in flight looked at."),
  runs: z.array(
    z.object({
      runId: z.string(),
      outcome: z
        .enum(["live", "launched", "finished", "skipped", "starting", "error", "unreadable"])
        .describe("skipped: this process is advancing it already; starting: a launch of it is being started by another caller; unreadable: its run.json cannot be read (error: why, object: which)."),
      state: z.string().optional(),
      error: z.string().optional(),
      object: z.string().optional(),
    }),
  ),
  durationMs: z.number(),
}).meta({ id: "ReconcileResult" });

export const Health = z.object({ status: z.literal("ok") }).meta({ id: "Health" });

export const ErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional().describe("The input at fault: a body field path, a query or path parameter, or a header.") }),
}).meta({ id: "Error" });

// The answer schemas restate interfaces of core and orchestrator: these lines fail to compile
// when the two drift apart, so the OpenAPI document stays true.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const inSync: [
  Same<z.infer<typeof RunStatusSchema>, RunStatus>,
  Same<z.infer<typeof RunSummarySchema>, RunSummary>,
  Same<z.infer<typeof FailedItemSchema>, FailedItemView>,
  Same<z.infer<typeof ReconcileResultSchema>, ReconcileResult>,
  Same<z.infer<typeof FireResult>, FireScheduleResult>,
] = [true, true, true, true, true];
void inSync;


/** Where a value came from, as error messages name it. */
export type InputPlace = "body" | "query" | "path" | "header";

/** Header names as documented (HTTP hands them to us in lower case). */
const HEADER_NAMES: Record<string, string> = { "x-cloudscheduler-scheduletime": "X-CloudScheduler-ScheduleTime" };

/** The value at `path` inside `input`, to show what was refused. */
function valueAt(input: unknown, path: readonly string[]): unknown {
  let v = input;
  for (const k of path) v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/**
 * A 400 for input that failed its schema: the message and `field` name the first input at fault
 * (a body path such as "budgets.tokens", an unknown key, a query, path or header parameter), and
 * the message ends with the value refused.
 * @param name the parameter's name, for a value that is one parameter (a path's `{id}`)
 */
export function invalidInput(error: z.ZodError, where: InputPlace, input: unknown, name?: string): HttpError {
  const issue = firstIssue(error);
  const inner = issue.path.map((p) => (where === "header" ? (HEADER_NAMES[p] ?? p) : p));
  const path = [...(name ? [name] : []), ...inner];
  const field = path.join(".");
  const value = issue.path.length ? valueAt(input, issue.path) : name ? input : undefined;
  const got = value !== undefined && !issue.conflict && issue.message !== "unknown field" ? `, got ${JSON.stringify(value)?.slice(0, 80)}` : "";
  return new HttpError(400, "invalid_argument", `${where}: ${field ? `${field}: ` : ""}${issue.message}${got}`, field ? { field } : {});
}

/** Parses input with its schema, or throws `invalidInput`'s 400. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: InputPlace, name?: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw invalidInput(parsed.error, where, value, name);
}
