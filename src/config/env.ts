/**
 * Every environment variable shardrun reads or sets, in one map. Readers take `env` so that
 * tests inject it instead of mutating `process.env`.
 */
import { z } from "zod";
import { InvalidInputError } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";

export const ENV = {
  // Set by Cloud Run Jobs (and by the local launcher, the same way).
  job: "CLOUD_RUN_JOB",
  execution: "CLOUD_RUN_EXECUTION",
  taskIndex: "CLOUD_RUN_TASK_INDEX",
  taskCount: "CLOUD_RUN_TASK_COUNT",
  taskAttempt: "CLOUD_RUN_TASK_ATTEMPT",
  // Set by shardrun's launchers as execution overrides.
  store: "SHARDRUN_STORE",
  run: "SHARDRUN_RUN",
  launch: "SHARDRUN_LAUNCH",
  deadlineSeconds: "SHARDRUN_DEADLINE_S",
  /** How the previous attempt of this task ended (`code:3`, `signal:SIGKILL`, `timeout`), when the launcher says. */
  previousExit: "SHARDRUN_PREVIOUS_EXIT",
  // Optional knobs.
  /** Log format of tasks: "json" (Cloud Logging) or "text". */
  logFormat: "SHARDRUN_LOG_FORMAT",
  /** Seconds before the deadline at which a task stops taking items. */
  deadlineMarginSeconds: "SHARDRUN_DEADLINE_MARGIN_S",
  /** Folder of job bundles on this machine (tasks fetch a run's bundle into it once). Default: the OS temp folder. */
  bundleCache: "SHARDRUN_BUNDLE_CACHE",
  /** Node's module compile cache folder; shardrun turns the cache on for its commands and local tasks (in the OS temp folder) unless set. */
  nodeCompileCache: "NODE_COMPILE_CACHE",
  /** Any value: no module compile cache. */
  nodeDisableCompileCache: "NODE_DISABLE_COMPILE_CACHE",
  // Where runs go on Google Cloud (flags win over these; these win over manifests/shardrun.json).
  project: "SHARDRUN_PROJECT",
  /** The project as Google's tools and libraries name it. */
  googleProject: "GOOGLE_CLOUD_PROJECT",
  region: "SHARDRUN_REGION",
  /** Most items one run may plan (default 10,000,000); a run's own setting overrides it. */
  maxItems: "SHARDRUN_MAX_ITEMS",
  /** Most shards one run may have, rounds included (default 200,000; at most 1,000,000). */
  maxShards: "SHARDRUN_MAX_SHARDS",
  /** Default store for commands given no --store. */
  defaultStore: "SHARDRUN_STORE_URL",
  image: "SHARDRUN_IMAGE",
  /** Cloud Storage emulator host (the client library reads it too). */
  storageEmulator: "STORAGE_EMULATOR_HOST",
  /** host:port of a Cloud Run API emulator or fake (plaintext, no credentials). */
  cloudRunEndpoint: "SHARDRUN_CLOUD_RUN_ENDPOINT",
  /** host:port of a Cloud Scheduler API emulator or fake (plaintext, no credentials). */
  cloudSchedulerEndpoint: "SHARDRUN_CLOUD_SCHEDULER_ENDPOINT",
  /** Base URL (http://host:port) of a Resource Manager API fake, for `doctor` (plaintext, no credentials). */
  resourceManagerEndpoint: "SHARDRUN_RESOURCE_MANAGER_ENDPOINT",
  /** Base URL (http://host:port) of an IAM API fake, for `doctor` (plaintext, no credentials). */
  iamEndpoint: "SHARDRUN_IAM_ENDPOINT",
  /** host:port of a Cloud Logging API emulator or fake (plaintext, no credentials), for `shardrun logs`. */
  cloudLoggingEndpoint: "SHARDRUN_CLOUD_LOGGING_ENDPOINT",
  /** `schedules sync`: the scheduler service's URL, which Cloud Scheduler jobs call. */
  serviceUrl: "SHARDRUN_SERVICE_URL",
  // The scheduler service (`shardrun serve`).
  /** Port to listen on; Cloud Run sets it. */
  port: "PORT",
  /** Local mode: the bearer token every API call must carry. */
  apiToken: "SHARDRUN_API_TOKEN",
  /** Cloud mode: the audience the Google-signed OIDC ID tokens must be issued for (the service URL). */
  oidcAudience: "SHARDRUN_OIDC_AUDIENCE",
  /** Cloud mode: comma-separated emails (service accounts) allowed to call the API. */
  allowedServiceAccounts: "SHARDRUN_ALLOWED_SERVICE_ACCOUNTS",
  /**
   * Cloud mode: "on" when Cloud Run's invoker IAM check stands in front of the service (it then
   * verifies tokens and forwards them with the signature stripped); "off" (the default) when the
   * service was deployed with `--no-invoker-iam-check` and verifies signatures itself.
   */
  invokerIamCheck: "SHARDRUN_INVOKER_IAM_CHECK",
} as const;

// Not z.coerce: it would read "" as 0, and an empty CLOUD_RUN_TASK_INDEX would pass as task 0.
const int = (name: string) =>
  z
    .string({ message: `Expected ${name} to be set` })
    .regex(/^\s*\d+\s*$/, `Expected ${name} to be a whole number`)
    .transform((v) => Number(v));

export const TaskEnv = z.object({
  [ENV.job]: z.string().min(1).default("shardrun"),
  [ENV.execution]: z.string().min(1),
  [ENV.taskIndex]: int(ENV.taskIndex),
  [ENV.taskCount]: int(ENV.taskCount).pipe(z.number().min(1, `Expected ${ENV.taskCount} to be 1 or more`)),
  [ENV.taskAttempt]: int(ENV.taskAttempt).optional().transform((v) => v ?? 0),
  [ENV.store]: z.string().min(1),
  [ENV.run]: z.string().min(1),
  [ENV.launch]: int(ENV.launch),
  [ENV.deadlineSeconds]: z.coerce.number().positive().optional(),
  [ENV.deadlineMarginSeconds]: z.coerce.number().min(0).optional(),
  [ENV.logFormat]: z.enum(["json", "text"]).default("json"),
  [ENV.previousExit]: z.string().regex(/^(timeout|signal:[A-Z0-9]+|code:\d+)$/, `Expected ${ENV.previousExit} to be timeout, signal:NAME or code:N`).optional(),
});

export interface TaskConfig {
  jobName: string;
  execution: string;
  taskIndex: number;
  taskCount: number;
  attempt: number;
  store: string;
  runId: string;
  launch: number;
  deadlineSeconds?: number;
  deadlineMarginSeconds?: number;
  logFormat: "json" | "text";
  /** How the previous attempt ended, when the launcher said. */
  previousExit?: string;
}

/** Reads the task's environment; a missing or bad variable is an error that names it. */
export function readTaskConfig(env: NodeJS.ProcessEnv = process.env): TaskConfig {
  const parsed = TaskEnv.safeParse(env);
  if (!parsed.success) throw new InvalidInputError(`task environment: ${formatZodError(parsed.error)}`);
  const e = parsed.data;
  return {
    jobName: e[ENV.job],
    execution: e[ENV.execution],
    taskIndex: e[ENV.taskIndex],
    taskCount: e[ENV.taskCount],
    attempt: e[ENV.taskAttempt],
    store: e[ENV.store],
    runId: e[ENV.run],
    launch: e[ENV.launch],
    ...(e[ENV.deadlineSeconds] !== undefined ? { deadlineSeconds: e[ENV.deadlineSeconds] } : {}),
    ...(e[ENV.deadlineMarginSeconds] !== undefined ? { deadlineMarginSeconds: e[ENV.deadlineMarginSeconds] } : {}),
    logFormat: e[ENV.logFormat],
    ...(e[ENV.previousExit] ? { previousExit: e[ENV.previousExit] } : {}),
  };
}

const limitVar = (name: string) =>
  z
    .string()
    .regex(/^\s*[1-9]\d*\s*$/, `Expected ${name} to be a whole number from 1 up`)
    .transform((v) => Number(v))
    .optional();

const PlanLimitsEnv = z.object({ [ENV.maxItems]: limitVar(ENV.maxItems), [ENV.maxShards]: limitVar(ENV.maxShards) });

/** Plan limits set in the environment (only those set); the planner checks their ranges. */
export function readPlanLimits(env: NodeJS.ProcessEnv = process.env): { maxItems?: number; maxShards?: number } {
  const parsed = PlanLimitsEnv.safeParse(env);
  if (!parsed.success) throw new InvalidInputError(`environment: ${formatZodError(parsed.error)}`);
  const e = parsed.data;
  return {
    ...(e[ENV.maxItems] !== undefined ? { maxItems: e[ENV.maxItems] } : {}),
    ...(e[ENV.maxShards] !== undefined ? { maxShards: e[ENV.maxShards] } : {}),
  };
}
