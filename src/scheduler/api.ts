/**
 * The scheduler service's API as data: zod schemas for every body, query and answer, and the
 * table of operations. The server parses with these schemas and the OpenAPI document is
 * generated from the same ones, so the two cannot drift apart.
 */
import { z } from "zod";
import { formatZodError } from "../core/zod-format.js";
import { Budgets, Usage } from "../core/budget.js";
import { RUN_ID_PATTERN } from "../core/ids.js";
import { FailureTolerance, JOB_NAME_PATTERN, SCHEDULE_NAME_PATTERN } from "../core/job.js";
import { RunState } from "../core/model.js";
import type { FailedItemView, RunStatus } from "../core/status.js";
import type { RunSummary } from "../orchestrator/read.js";
import { HttpError } from "./router.js";

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

export const RunBudget = z
  .strictObject({
    tokens: z.number().int().positive().optional(),
    usd: z.number().positive().optional(),
    minutes: z.number().int().positive().optional(),
  })
  .describe("Run-level budget limits; the run stops as budget_exhausted at the first one reached.");

export const StartRunBody = z
  .strictObject({
    args: z.record(z.string(), z.unknown()).default({}).describe("Job arguments, checked by the job's args schema."),
    shards: count(1, 100_000).optional().describe("Split the items into this many shards (not with itemsPerShard)."),
    itemsPerShard: z.number().int().min(1).optional().describe("Or: this many items per shard."),
    tasks: count(1, 10_000).optional().describe("Tasks per launch; fewer tasks than shards claim shards dynamically."),
    parallelism: count(1, 10_000).optional(),
    taskTimeoutSeconds: count(1, 7 * 24 * 3600).default(3600),
    maxRetries: count(0, 10).default(3),
    maxLaunches: count(1, 1000).default(5),
    budgets: RunBudget.optional(),
    maxFailedItems: FailureTolerance.optional().describe('Failure tolerance: a count (5) or a share ("2%").'),
  })
  .refine((b) => b.shards === undefined || b.itemsPerShard === undefined, { message: "give shards or itemsPerShard, not both", path: ["itemsPerShard"] });
export type StartRunBody = z.infer<typeof StartRunBody>;

export const RerunBody = z.strictObject({
  failedItems: z.boolean().default(false).describe("Rerun exactly the failed items, re-planned into new shards."),
  upgrade: z.boolean().default(false).describe("Build the job from its source as it is now and run that; by default a rerun runs the code the run recorded."),
  tasks: count(1, 10_000).optional(),
  parallelism: count(1, 10_000).optional(),
  maxLaunches: count(1, 1000).optional(),
  budgetTokens: z.number().int().positive().optional().describe("Raise (or set) the run budget in tokens."),
  budgetUsd: z.number().positive().optional(),
  budgetMinutes: z.number().int().positive().optional(),
});
export type RerunBody = z.infer<typeof RerunBody>;

export const ListRunsQuery = z.strictObject({
  job: JobName.optional(),
  state: RunState.optional(),
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
  url: z.string().optional(),
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
  state: z.enum(["pending", "running", "succeeded", "failed", "partial", "cancelled", "budget_exhausted"]),
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  reason: z.string().optional(),
  items: z.object({ total: z.number().int(), succeeded: z.number().int(), failed: z.number().int(), pending: z.number().int() }),
  shards: z.object({ total: z.number().int(), done: z.number().int(), running: z.number().int() }),
  launches: z.array(LaunchStatusSchema),
  executions: z.number().int(),
  usage: Usage,
  budgets: Budgets,
  shardList: z.array(ShardStatusSchema),
});

export const RunSummarySchema = z.object({
  runId: z.string(),
  job: z.string(),
  state: z.string(),
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  items: z.number().int(),
  trigger: z.string(),
});

export const RunsPage = z.object({ runs: z.array(RunSummarySchema), nextPageToken: z.string().optional() });

export const FailedItemSchema = z.object({
  i: z.number().int(),
  key: z.string(),
  shard: z.string(),
  error: z.string(),
  attempts: z.number().int(),
  reason: z.string(),
});

export const DeadLetterPage = z.object({
  runId: z.string(),
  total: z.number().int(),
  items: z.array(FailedItemSchema),
  nextPageToken: z.string().optional(),
});

export const FireResult = z.object({
  runId: z.string(),
  created: z.boolean().describe("True only for the fire that started the run; a retry of the same time gets false."),
  job: z.string(),
  scheduledTime: z.string(),
  launchError: z.string().optional().describe("The run is planned but its first launch failed; reconcile launches it."),
});

export const ReconcileResult = z.object({
  checked: z.number().int().describe("Runs in flight looked at."),
  runs: z.array(
    z.object({
      runId: z.string(),
      outcome: z
        .enum(["live", "launched", "finished", "skipped", "starting", "error"])
        .describe("skipped: this process is advancing it already; starting: a launch of it is being started by another caller."),
      state: z.string().optional(),
      error: z.string().optional(),
    }),
  ),
  durationMs: z.number(),
});
export type ReconcileResult = z.infer<typeof ReconcileResult>;

export const Health = z.object({ status: z.literal("ok") });

export const ErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional().describe("The input at fault: a body field path, a query or path parameter, or a header.") }),
});

// The answer schemas restate interfaces of core and orchestrator: these lines fail to compile
// when the two drift apart, so the OpenAPI document stays true.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const inSync: [Same<z.infer<typeof RunStatusSchema>, RunStatus>, Same<z.infer<typeof RunSummarySchema>, RunSummary>, Same<z.infer<typeof FailedItemSchema>, FailedItemView>] = [true, true, true];
void inSync;

// ---- operations ----

export interface Operation {
  method: "GET" | "POST";
  path: string;
  operationId: string;
  summary: string;
  /** Path parameters and their schemas. */
  params?: Record<string, z.ZodType>;
  query?: z.ZodObject;
  headers?: Record<string, { schema: z.ZodType; description: string }>;
  body?: z.ZodType;
  /** Status code -> what it means and its JSON schema (none for HTML). */
  responses: Record<number, { description: string; schema?: z.ZodType; html?: true }>;
  /** False for the open endpoints (health checks, this document). @default true */
  auth?: boolean;
}

const errors = {
  400: { description: "Bad input: the error names the field.", schema: ErrorSchema },
  401: { description: "No credentials, or credentials that do not verify.", schema: ErrorSchema },
  403: { description: "Verified caller, not allowed.", schema: ErrorSchema },
} as const;
const notFound = { 404: { description: "No such run.", schema: ErrorSchema } } as const;
const runParam = { id: RunId };

export const OPERATIONS: Operation[] = [
  { method: "GET", path: "/healthz", operationId: "health", summary: "Liveness check.", auth: false, responses: { 200: { description: "Serving.", schema: Health } } },
  { method: "GET", path: "/openapi.json", operationId: "openapi", summary: "This document.", auth: false, responses: { 200: { description: "OpenAPI 3.1 document." } } },
  {
    method: "POST",
    path: "/v1/jobs/{job}/runs",
    operationId: "startRun",
    summary: "Plan a run of a job and launch its first tasks.",
    params: { job: JobName },
    body: StartRunBody,
    responses: { 202: { description: "Planned and launched; reconcile drives it on.", schema: RunStatusSchema }, ...errors, 404: { description: "No such job.", schema: ErrorSchema } },
  },
  { method: "GET", path: "/v1/runs", operationId: "listRuns", summary: "Runs, newest first.", query: ListRunsQuery, responses: { 200: { description: "A page of runs.", schema: RunsPage }, ...errors } },
  { method: "GET", path: "/v1/runs/{id}", operationId: "getRun", summary: "A run's status.", params: runParam, responses: { 200: { description: "The status object.", schema: RunStatusSchema }, ...errors, ...notFound } },
  {
    method: "POST",
    path: "/v1/runs/{id}:rerun",
    operationId: "rerunRun",
    summary: "Launch what is not done, or only the failed items.",
    params: runParam,
    body: RerunBody,
    responses: { 202: { description: "Relaunched.", schema: RunStatusSchema }, ...errors, ...notFound, 409: { description: "A launch is live, or the job cannot be built here for an upgrade (or, for a run recorded before bundles, its code changed: give upgrade).", schema: ErrorSchema } },
  },
  {
    method: "POST",
    path: "/v1/runs/{id}:cancel",
    operationId: "cancelRun",
    summary: "Cancel the live executions and mark the run cancelled.",
    params: runParam,
    body: EmptyBody,
    responses: { 200: { description: "Cancelled.", schema: RunStatusSchema }, ...errors, ...notFound, 409: { description: "The run already finished.", schema: ErrorSchema } },
  },
  {
    method: "GET",
    path: "/v1/runs/{id}/dead-letter",
    operationId: "deadLetter",
    summary: "Items that failed every retry, with their errors.",
    params: runParam,
    query: DeadLetterQuery,
    responses: { 200: { description: "A page of failed items.", schema: DeadLetterPage }, ...errors, ...notFound },
  },
  {
    method: "POST",
    path: "/v1/schedules/{name}:fire",
    operationId: "fireSchedule",
    summary: "Start the run of a schedule for one scheduled time (idempotent per time).",
    params: { name: ScheduleName },
    headers: { "X-CloudScheduler-ScheduleTime": { schema: ScheduleTime, description: "The scheduled time (RFC 3339), the idempotency key; default: the current minute. Any body is ignored." } },
    responses: {
      202: { description: "A run was started.", schema: FireResult },
      200: { description: "This schedule time already has its run.", schema: FireResult },
      ...errors,
      404: { description: "No such schedule.", schema: ErrorSchema },
    },
  },
  { method: "POST", path: "/v1/reconcile", operationId: "reconcile", summary: "Advance every run in flight one step.", body: EmptyBody, responses: { 200: { description: "What each run did.", schema: ReconcileResult }, ...errors } },
  { method: "GET", path: "/", operationId: "runsPage", summary: "Dashboard: the runs.", responses: { 200: { description: "HTML page.", html: true }, ...errors } },
  { method: "GET", path: "/runs/{id}", operationId: "runPage", summary: "Dashboard: one run.", params: runParam, responses: { 200: { description: "HTML page.", html: true }, ...errors, ...notFound } },
];

/**
 * Parses input with its schema, or throws a 400 whose `field` names the first input at fault:
 * a body path ("budgets.tokens"), an unknown key ("bogus"), a query or path parameter.
 * @param where what the value is, for the message ("body", "query", "path")
 * @param name the parameter's name, for a value that is one parameter (a path's `{id}`)
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: "body" | "query" | "path", name?: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = [...(name ? [name] : []), ...(issue?.path ?? []).map(String)];
  if (issue?.code === "unrecognized_keys" && issue.keys[0] !== undefined) path.push(issue.keys[0]);
  const field = path.join(".");
  throw new HttpError(400, "invalid_argument", `${where}: ${formatZodError(parsed.error, name)}`, field ? { field } : {});
}
