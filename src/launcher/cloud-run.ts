/**
 * The Launcher port on Cloud Run Jobs (Admin API v2, through @google-cloud/run over gRPC).
 *
 * A launch is one `RunJob` with overrides (task count, task timeout, container env). `RunJob` is
 * not idempotent (DESIGN.md protocol 6): an error after the request was sent does not say whether
 * an execution started, so it is never sent again then; `launch` rejects with LaunchUncertain
 * and the launch's own tasks name their execution in the store. Listing executions cannot
 * settle it: their order, how soon a new one is listed and whether the override env shows in
 * them are not documented, and Cloud Run keeps only the last 1,000 finished ones.
 *
 * Parallelism is the job's, not the execution's, and an execution whose task count is below it
 * is refused; `shardrun deploy` leaves it unset, so that every launch (a small run, a
 * continuation for a few shards) is valid, and each execution runs all its tasks at once.
 * Status is read from the Execution and its Tasks and mapped into the same ExecutionStatus the
 * local launcher reports.
 */
import { ExecutionsClient, JobsClient, TasksClient } from "@google-cloud/run";
import type { ClientOptions } from "google-gax";
import { z } from "zod";
import { ENV } from "../config/env.js";
import { nextRetryDelay, RetryPolicy } from "../core/backoff.js";
import { errorMessage, LaunchUncertain, ShardrunError } from "../core/errors.js";
import type { ExecutionState, ExecutionStatus, LaunchRequest, Launcher, TaskState, TaskStatus } from "./port.js";

export interface CloudRunLauncherOptions {
  /** Google Cloud project id, e.g. `"my-project"`. */
  project: string;
  /** Cloud Run region, e.g. `"europe-west1"`. */
  region: string;
  /**
   * Passed to every `@google-cloud/run` client. Tests point it at a fake:
   * `{ apiEndpoint: "127.0.0.1", port, sslCreds: grpc.credentials.createInsecure(), authClient }`.
   * @default {} (Application Default Credentials, run.googleapis.com)
   */
  clientOptions?: ClientOptions;
  /**
   * The container that receives the env overrides; needed only when the job has several.
   * @default undefined (the job's only container)
   */
  containerName?: string;
  /**
   * Backoff for reads and cancels on UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED, for
   * a `RunJob` refused by quota, and for polling its operation for the execution's name.
   * @default { attempts: 5, minDelayMs: 250, maxDelayMs: 5000, factor: 2, jitter: true }
   */
  retry?: Partial<RetryPolicy>;
  /**
   * `RunJob` calls per launch, the first included. A call is repeated only when it surely
   * started nothing (RESOURCE_EXHAUSTED: refused by quota).
   * @default 3
   */
  launchAttempts?: number;
}

/** gRPC status codes (google.rpc.Code) that the launcher decides on. */
export const GrpcCode = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The gRPC code of a client error; undefined for an error that never reached gRPC. */
export function grpcCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

const TRANSIENT: ReadonlySet<number> = new Set([GrpcCode.UNAVAILABLE, GrpcCode.DEADLINE_EXCEEDED, GrpcCode.RESOURCE_EXHAUSTED]);
/** Errors after which a sent `RunJob` may or may not have started an execution. */
const UNCERTAIN: ReadonlySet<number> = new Set([GrpcCode.UNAVAILABLE, GrpcCode.DEADLINE_EXCEEDED, GrpcCode.UNKNOWN, GrpcCode.INTERNAL, GrpcCode.CANCELLED, GrpcCode.ABORTED]);

/** Backoff for reads; also what deploy uses. */
export { sleep } from "../core/time.js";
import { sleep } from "../core/time.js";

export const DEFAULT_RETRY = { attempts: 5, minDelayMs: 250, maxDelayMs: 5000, factor: 2, jitter: true } satisfies RetryPolicy;


/** Calls `fn` again on a transient gRPC error, with backoff; only for calls safe to repeat. */
export async function retryTransient<T>(policy: RetryPolicy, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const code = grpcCode(error);
      if (attempt >= policy.attempts || code === undefined || !TRANSIENT.has(code)) throw error;
      await sleep(nextRetryDelay(policy, attempt), signal);
    }
  }
}

/** A Cloud Run API error as a ShardrunError whose message says what to do about it. */
export function cloudRunError(what: string, error: unknown, hint?: Partial<Record<number, string>>): ShardrunError {
  const code = grpcCode(error);
  const advice =
    (code !== undefined ? hint?.[code] : undefined) ??
    (code === GrpcCode.UNAUTHENTICATED
      ? "no valid credentials: run `gcloud auth application-default login` or give the process a service account"
      : code === GrpcCode.PERMISSION_DENIED
        ? "permission denied"
        : undefined);
  const message = `${what}: ${errorMessage(error)}${advice ? ` (${advice})` : ""}`;
  return new ShardrunError(code === GrpcCode.NOT_FOUND ? "NOT_FOUND" : code === GrpcCode.INVALID_ARGUMENT ? "INVALID_INPUT" : "INTERNAL", message, {
    cause: error,
  });
}

// What the launcher reads from the API, parsed: gax decodes with defaults, longs and enums as
// strings, but a message left unset comes back as null.
const Timestamp = z.object({ seconds: z.union([z.string(), z.number()]).nullish(), nanos: z.number().nullish() }).nullish();
const Condition = z.object({
  type: z.string().nullish(),
  state: z.union([z.string(), z.number()]).nullish(),
  reason: z.union([z.string(), z.number()]).nullish(),
  executionReason: z.union([z.string(), z.number()]).nullish(),
});
const count = z.number().nullish().transform((n) => n ?? 0);
const conditions = z.array(Condition).nullish().transform((c) => c ?? []);
export const ExecutionResource = z.object({
  name: z.string(),
  createTime: Timestamp,
  startTime: Timestamp,
  completionTime: Timestamp,
  taskCount: count,
  runningCount: count,
  succeededCount: count,
  failedCount: count,
  cancelledCount: count,
  conditions,
});
export type ExecutionResource = z.infer<typeof ExecutionResource>;
export const TaskResource = z.object({
  index: count,
  startTime: Timestamp,
  completionTime: Timestamp,
  retried: count,
  conditions,
  lastAttemptResult: z
    .object({ exitCode: count, termSignal: count, status: z.object({ code: count }).nullish() })
    .nullish(),
});
export type TaskResource = z.infer<typeof TaskResource>;

function isoTime(ts: z.infer<typeof Timestamp>): string | undefined {
  const seconds = Number(ts?.seconds ?? 0);
  if (!ts || (!seconds && !ts.nanos)) return undefined;
  return new Date(seconds * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString();
}

const completed = (c: z.infer<typeof conditions>) => c.find((x) => x.type === "Completed");
const isCancelled = (c: z.infer<typeof Condition> | undefined) => c?.executionReason === "CANCELLED";

/** An Execution's state, from its `Completed` condition, then its times and counts. */
export function executionState(ex: ExecutionResource): ExecutionState {
  const done = completed(ex.conditions);
  if (done?.state === "CONDITION_SUCCEEDED") return "succeeded";
  const failedTasks = ex.failedCount > 0;
  if (done?.state === "CONDITION_FAILED") return isCancelled(done) || (ex.cancelledCount > 0 && !failedTasks) ? "cancelled" : "failed";
  if (isoTime(ex.completionTime)) {
    // Finished without a condition we understand: decide from the counts.
    if (ex.succeededCount >= ex.taskCount && !failedTasks) return "succeeded";
    return ex.cancelledCount > 0 && !failedTasks ? "cancelled" : "failed";
  }
  if (isoTime(ex.startTime) || ex.runningCount + ex.succeededCount + ex.failedCount > 0) return "running";
  return "pending";
}

/** A Task's state and attempts. Cloud Run reports retries as `retried`, not as attempts. */
export function taskStatus(task: TaskResource): TaskStatus {
  const done = completed(task.conditions);
  const retrying = task.conditions.some((c) => c.reason === "IMMEDIATE_RETRY" || c.reason === "POSTPONED_RETRY");
  const result = task.lastAttemptResult;
  let state: TaskState;
  if (done?.state === "CONDITION_SUCCEEDED") state = "succeeded";
  else if (done?.state === "CONDITION_FAILED") state = isCancelled(done) ? "cancelled" : "failed";
  else if (isoTime(task.completionTime)) state = result && !result.exitCode && !result.termSignal && !result.status?.code ? "succeeded" : "failed";
  else if (retrying) state = "retrying";
  else if (isoTime(task.startTime)) state = "running";
  else state = "pending";
  const started = Boolean(isoTime(task.startTime) || result || task.retried > 0);
  const status: TaskStatus = { index: task.index, state, attempts: started ? task.retried + 1 : 0 };
  // Same convention as the local launcher: a signal is 128 + its number. An attempt that ended
  // with an error status but no exit code (the container never ran) has no exit code to report.
  if (result?.termSignal) status.lastExitCode = 128 + result.termSignal;
  else if (result && (result.exitCode || !result.status?.code)) status.lastExitCode = result.exitCode;
  return status;
}

/** The parts of `projects/P/locations/R/jobs/J/executions/E`. */
export function parseExecutionName(name: string): { project: string; region: string; job: string; execution: string } | null {
  const m = /^projects\/([^/]+)\/locations\/([^/]+)\/jobs\/([^/]+)\/executions\/([^/]+)$/.exec(name);
  return m ? { project: m[1]!, region: m[2]!, job: m[3]!, execution: m[4]! } : null;
}

/** The Cloud Console page of an execution. */
export function consoleUrl(project: string, region: string, execution: string): string {
  return `https://console.cloud.google.com/run/jobs/executions/details/${encodeURIComponent(region)}/${encodeURIComponent(execution)}/tasks?project=${encodeURIComponent(project)}`;
}

export class CloudRunLauncher implements Launcher {
  readonly kind = "cloud-run" as const;
  /** The job's parallelism is left unset (see `shardrun deploy`): an execution runs every task at once. */
  readonly runsAllTasksAtOnce = true;
  readonly #project: string;
  readonly #region: string;
  readonly #containerName: string | undefined;
  readonly #retry: RetryPolicy;
  readonly #launchAttempts: number;
  readonly #jobs: JobsClient;
  readonly #executions: ExecutionsClient;
  readonly #tasks: TasksClient;

  constructor(options: CloudRunLauncherOptions) {
    if (typeof options.project !== "string" || !options.project) throw new TypeError("Expected `project` to be a non-empty string");
    if (typeof options.region !== "string" || !options.region) throw new TypeError("Expected `region` to be a non-empty string");
    const launchAttempts = options.launchAttempts ?? 3;
    if (!Number.isInteger(launchAttempts) || launchAttempts < 1) throw new TypeError("Expected `launchAttempts` to be a whole number from 1 and up");
    this.#project = options.project;
    this.#region = options.region;
    this.#containerName = options.containerName;
    this.#retry = RetryPolicy.parse({ ...DEFAULT_RETRY, ...options.retry });
    this.#launchAttempts = launchAttempts;
    // Constructing a client opens no connection; the first call does.
    const clientOptions = options.clientOptions ?? {};
    this.#jobs = new JobsClient(clientOptions);
    this.#executions = new ExecutionsClient(clientOptions);
    this.#tasks = new TasksClient(clientOptions);
  }

  #jobPath(jobName: string): string {
    return `projects/${this.#project}/locations/${this.#region}/jobs/${jobName}`;
  }

  /**
   * A full execution name, from a full one, a relative one (`jobs/<job>/executions/<id>`, as a
   * task names its own) or a short one (`<job>-<5 chars>`), the last two taken as this
   * project's and region's.
   */
  #executionPath(name: string): string {
    if (name.startsWith("projects/")) return name;
    if (name.startsWith("jobs/")) return `projects/${this.#project}/locations/${this.#region}/${name}`;
    return `${this.#jobPath(name.replace(/-[a-z0-9]+$/, ""))}/executions/${name}`;
  }

  /**
   * Starts one execution and returns its full name. `parallelism` and `maxRetries` are the job's
   * (set by deploy): Cloud Run cannot override them per execution. Rejects with LaunchUncertain
   * when an execution may have started without its name reaching here.
   */
  async launch(request: LaunchRequest, signal?: AbortSignal): Promise<string> {
    const name = this.#jobPath(request.jobName);
    // The launch's identity, for people and logs reading the execution (nothing searches by it).
    const env = { ...request.env, [ENV.run]: request.runId, [ENV.launch]: String(request.launch) };
    const runRequest = {
      name,
      overrides: {
        taskCount: request.taskCount,
        timeout: { seconds: Math.ceil(request.taskTimeoutSeconds) },
        containerOverrides: [
          { ...(this.#containerName ? { name: this.#containerName } : {}), env: Object.entries(env).map(([k, value]) => ({ name: k, value })) },
        ],
      },
    };
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.#launchAttempts; attempt++) {
      signal?.throwIfAborted();
      let operation;
      try {
        [operation] = await this.#jobs.runJob(runRequest);
      } catch (error) {
        lastError = error;
        const code = grpcCode(error);
        if (code === GrpcCode.RESOURCE_EXHAUSTED) {
          // Refused by quota: nothing started, so sending it again is safe.
          if (attempt < this.#launchAttempts) await sleep(nextRetryDelay(this.#retry, attempt), signal);
          continue;
        }
        // No gRPC code: refused before it was sent (credentials, say). A definite refusal: none started.
        if (code === undefined || !UNCERTAIN.has(code)) throw this.#runJobError(name, error, request.taskCount);
        throw new LaunchUncertain(
          `RunJob on ${name} failed after it may have been sent (${errorMessage(error)}); not sent again, since RunJob is not idempotent: the launch's tasks will name its execution if one started`,
          { cause: error },
        );
      }
      const execution = await this.#executionOf(operation.name, operation.metadata, signal);
      if (execution) return execution;
      throw new LaunchUncertain(`RunJob on ${name} started an execution, but its operation ${operation.name ?? ""} did not name it: the launch's tasks will`);
    }
    throw cloudRunError(`could not start an execution of ${name} after ${this.#launchAttempts} attempts`, lastError, {
      [GrpcCode.RESOURCE_EXHAUSTED]: "Cloud Run refused it for quota each time; nothing started",
    });
  }

  #runJobError(name: string, error: unknown, taskCount: number): ShardrunError {
    return cloudRunError(`could not run Cloud Run job ${name}`, error, {
      [GrpcCode.NOT_FOUND]: "the job is not deployed: run `shardrun deploy` first",
      [GrpcCode.PERMISSION_DENIED]: "running a job with overrides needs run.jobs.runWithOverrides, in roles/run.developer on the job",
      [GrpcCode.INVALID_ARGUMENT]: `if the job's parallelism is above this launch's ${taskCount} tasks, Cloud Run refuses the execution: run \`shardrun deploy\`, which leaves the job's parallelism unset`,
    });
  }

  /**
   * The execution a RunJob operation started. Its metadata is the Execution; if the first
   * answer does not carry it yet, poll the operation only until it does, never until the
   * execution ends (the operation is done only then). Null when it never says.
   */
  async #executionOf(operationName: string | null | undefined, metadata: unknown, signal?: AbortSignal): Promise<string | null> {
    let name = metadataName(metadata);
    for (let attempt = 1; !name && operationName && attempt < this.#retry.attempts; attempt++) {
      await sleep(nextRetryDelay(this.#retry, attempt), signal);
      try {
        name = metadataName((await this.#jobs.checkRunJobProgress(operationName)).metadata);
      } catch (error) {
        const code = grpcCode(error);
        // The execution started all the same: only its name is missing.
        if (code === undefined || !TRANSIENT.has(code)) return null;
      }
    }
    return name;
  }

  async getExecution(name: string): Promise<ExecutionStatus | null> {
    const path = this.#executionPath(name);
    let ex: ExecutionResource;
    try {
      const [raw] = await retryTransient(this.#retry, () => this.#executions.getExecution({ name: path }));
      ex = ExecutionResource.parse(raw);
    } catch (error) {
      if (grpcCode(error) === GrpcCode.NOT_FOUND) return null;
      throw cloudRunError(`could not read execution ${path}`, error);
    }
    const tasks = new Map<number, TaskStatus>();
    let pageToken = "";
    do {
      let page;
      try {
        page = await retryTransient(this.#retry, () => this.#tasks.listTasks({ parent: path, pageSize: 1000, pageToken }, { autoPaginate: false }));
      } catch (error) {
        throw cloudRunError(`could not list tasks of ${path}`, error);
      }
      for (const raw of page[0]) {
        const task = taskStatus(TaskResource.parse(raw));
        tasks.set(task.index, task);
      }
      pageToken = page[1]?.pageToken ?? "";
    } while (pageToken);
    const taskCount = Math.max(ex.taskCount, tasks.size);
    const parts = parseExecutionName(ex.name) ?? parseExecutionName(path);
    const startedAt = isoTime(ex.startTime) ?? isoTime(ex.createTime);
    const finishedAt = isoTime(ex.completionTime);
    return {
      name: ex.name,
      state: executionState(ex),
      taskCount,
      running: ex.runningCount,
      succeeded: ex.succeededCount,
      failed: ex.failedCount,
      cancelled: ex.cancelledCount,
      // Tasks not listed yet have not been created: they are pending.
      tasks: Array.from({ length: taskCount }, (_, index) => tasks.get(index) ?? { index, state: "pending" as const, attempts: 0 }),
      ...(startedAt ? { startedAt } : {}),
      ...(finishedAt ? { finishedAt } : {}),
      ...(parts ? { url: consoleUrl(parts.project, parts.region, parts.execution) } : {}),
    };
  }

  /** The Cloud Console page of an execution, from its full or short name (no API call). */
  executionUrl(name: string): string | undefined {
    const parts = parseExecutionName(this.#executionPath(name));
    return parts ? consoleUrl(parts.project, parts.region, parts.execution) : undefined;
  }

  async cancel(name: string): Promise<void> {
    const path = this.#executionPath(name);
    try {
      // Cancelling twice is harmless, so a transient error may be retried.
      await retryTransient(this.#retry, () => this.#executions.cancelExecution({ name: path }));
    } catch (error) {
      const code = grpcCode(error);
      // Unknown, or already finished: nothing is left to cancel, as with the local launcher.
      if (code === GrpcCode.NOT_FOUND || code === GrpcCode.FAILED_PRECONDITION) return;
      throw cloudRunError(`could not cancel execution ${path}`, error);
    }
  }

  /** Closes the gRPC channels. */
  async close(): Promise<void> {
    await Promise.all([this.#jobs.close(), this.#executions.close(), this.#tasks.close()]);
  }
}

/** The Execution name in a RunJob operation's metadata (a decoded Execution message). */
function metadataName(metadata: unknown): string | null {
  const parsed = z.object({ name: z.string().nullish() }).nullish().safeParse(metadata);
  return (parsed.success && parsed.data?.name) || null;
}
