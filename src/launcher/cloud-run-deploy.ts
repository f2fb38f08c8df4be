/**
 * Deploying the Cloud Run job that shardrun launches: create it, or update it when the settings
 * shardrun manages differ, through the Admin API v2. Settings it does not manage (VPC access,
 * volumes, secret env vars, labels set by others) are kept on update, so a job tuned in the
 * console is not reset by the next deploy.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { JobsClient } from "@google-cloud/run";
import { protobuf, type ClientOptions } from "google-gax";
import { z } from "zod";
import { ENV } from "../config/env.js";
import { InvalidInputError } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";
import { cloudRunError, grpcCode, GrpcCode, DEFAULT_RETRY, retryTransient } from "./cloud-run.js";

export const DeployJobSpec = z.strictObject({
  /** Google Cloud project id. */
  project: z.string().min(1),
  /** Cloud Run region, e.g. "europe-west1". */
  region: z.string().min(1),
  /** The job name, e.g. "shardrun-summarize-docs". */
  name: z.string().regex(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, "Expected a job name of lowercase letters, digits and hyphens, starting with a letter, at most 63 characters"),
  /** Container image, e.g. "europe-west1-docker.pkg.dev/p/shardrun/worker:1.2.0". */
  image: z.string().min(1),
  /** Task timeout; a launch may override it. */
  taskTimeoutSeconds: z.number().int().min(1).max(7 * 24 * 3600),
  /** Retries per task after its first attempt; Cloud Run allows 0 to 10. */
  maxRetries: z.number().int().min(0).max(10),
  /**
   * The job's parallelism: 0, which leaves it unset. Cloud Run fixes parallelism on the job (a
   * launch cannot override it) and refuses an execution whose task count is below it, while
   * shardrun launches as many tasks as shards are open (a small run, a continuation). Unset, an
   * execution runs all its tasks at once (execution_template.proto: "the maximum possible
   * value"), so a run's parallelism is its task count (`run --tasks`).
   * @default 0
   */
  parallelism: z
    .number()
    .int()
    .min(0)
    .max(0, "Expected parallelism 0 (unset): Cloud Run refuses an execution whose task count is below its job's parallelism, and shardrun launches as many tasks as shards are open; give a run --tasks instead")
    .default(0),
  /** Default task count; every shardrun launch overrides it. @default 1 */
  taskCount: z.number().int().min(1).max(10_000).default(1),
  /** The identity tasks run as; it needs roles/storage.objectUser on the bucket. */
  serviceAccount: z.string().min(1).optional(),
  /** Plain env for every task. Cloud Run reserves CLOUD_RUN_* names. @default {} */
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "Expected env names of letters, digits and underscores"), z.string())
    .refine((env) => !Object.keys(env).some((k) => k.startsWith("CLOUD_RUN_")), "CLOUD_RUN_* env names are set by Cloud Run itself")
    .default({}),
  /** Memory limit, e.g. "1Gi". @default Cloud Run's default (512Mi) */
  memory: z.string().regex(/^\d+(Mi|Gi)$/, 'Expected memory like "512Mi" or "2Gi"').optional(),
  /** CPU limit, e.g. "1" or "2". @default Cloud Run's default (1) */
  cpu: z.string().regex(/^\d+(\.\d+)?$/, 'Expected cpu like "1" or "2"').optional(),
  /**
   * The shardrun version that deploys the job, recorded as the label `shardrun-version` (label
   * values allow no dots: "0.1.0" is "0-1-0"), so that `shardrun doctor` can tell a job deployed
   * by another version. @default none (no label)
   */
  version: z.string().min(1).optional(),
});
export type DeployJobSpec = z.input<typeof DeployJobSpec>;

export interface DeployOptions {
  /** Read the current job but change nothing; return what would be sent. @default false */
  dryRun?: boolean;
  /** Passed to the JobsClient (tests point it at a fake). @default {} */
  clientOptions?: ClientOptions;
}

/** A Job resource as plain JSON: unset fields left out, int64 (durations' seconds) as strings. */
export type JobJson = Record<string, unknown>;

export interface DeployResult {
  action: "create" | "update" | "unchanged";
  /** The job as created or updated (or, with dryRun, as it would be sent). */
  job: JobJson;
  /** The managed settings that differ from the deployed job; empty for create and unchanged. */
  changes: string[];
  /** Each change as "<setting> <deployed> -> <wanted>", for people (update only). */
  details?: string[];
}

/** The managed settings of a job, in a form two jobs can be compared by. */
interface Managed {
  image: string;
  env: [string, string][];
  memory: string | undefined;
  cpu: string | undefined;
  taskTimeoutSeconds: number;
  maxRetries: number;
  parallelism: number;
  taskCount: number;
  serviceAccount: string | undefined;
  version: string | undefined;
}

/** The label that records which shardrun version deployed a job. */
export const VERSION_LABEL = "shardrun-version";

/**
 * A version as a label value: Cloud Run labels take lowercase letters, digits, `_` and `-`, at
 * most 63 characters.
 */
export function versionLabel(version: string): string {
  return version.toLowerCase().replace(/[^a-z0-9_-]/g, "-").slice(0, 63);
}

/** The settings of a deployment that every job shares (manifests/shardrun.json, env, flags). */
export interface DeploySettings {
  project?: string | undefined;
  region?: string | undefined;
  image?: string | undefined;
  serviceAccount?: string | undefined;
  taskTimeoutSeconds?: number | undefined;
  maxRetries?: number | undefined;
  parallelism?: number | undefined;
  memory?: string | undefined;
  cpu?: string | undefined;
}

/**
 * The spec `shardrun deploy` sends for one job, and `shardrun doctor` compares with: one place,
 * so that the two never disagree. Settings still unknown (a dry run without a project) are
 * written as the placeholders the manifests use.
 */
export function deploySpecFor(job: { name: string; tasks?: number | undefined }, settings: DeploySettings, version?: string): DeployJobSpec {
  return {
    project: settings.project ?? "PROJECT_ID",
    region: settings.region ?? "REGION",
    name: `shardrun-${job.name}`,
    image: settings.image ?? "REGION-docker.pkg.dev/PROJECT_ID/shardrun/shardrun:latest",
    taskTimeoutSeconds: settings.taskTimeoutSeconds ?? 3600,
    maxRetries: settings.maxRetries ?? 3,
    // Unset on the job (see DeployJobSpec.parallelism); a value left in the settings file is refused by name.
    parallelism: settings.parallelism ?? 0,
    taskCount: job.tasks ?? 10,
    env: { [ENV.logFormat]: "json" },
    ...(settings.serviceAccount ? { serviceAccount: settings.serviceAccount } : {}),
    ...(settings.memory ? { memory: settings.memory } : {}),
    ...(settings.cpu ? { cpu: settings.cpu } : {}),
    ...(version ? { version } : {}),
  };
}

function parseSpec(input: DeployJobSpec): z.infer<typeof DeployJobSpec> {
  const parsed = DeployJobSpec.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(`deploy: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

/** The Job shardrun creates for a spec, before Cloud Run fills in its output-only fields. */
export function buildJob(input: DeployJobSpec): JobJson {
  const spec = parseSpec(input);
  const limits = { ...(spec.memory ? { memory: spec.memory } : {}), ...(spec.cpu ? { cpu: spec.cpu } : {}) };
  return {
    client: "shardrun",
    ...(spec.version ? { labels: { [VERSION_LABEL]: versionLabel(spec.version) } } : {}),
    template: {
      // 0 is unset: left out, so that the request carries no parallelism at all.
      ...(spec.parallelism ? { parallelism: spec.parallelism } : {}),
      taskCount: spec.taskCount,
      template: {
        containers: [
          {
            image: spec.image,
            env: Object.entries(spec.env).map(([name, value]) => ({ name, value })),
            ...(Object.keys(limits).length ? { resources: { limits } } : {}),
          },
        ],
        maxRetries: spec.maxRetries,
        timeout: { seconds: spec.taskTimeoutSeconds },
        ...(spec.serviceAccount ? { serviceAccount: spec.serviceAccount } : {}),
      },
    },
  };
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);

function managed(job: JobJson): Managed {
  const exec = obj(job.template);
  const task = obj(exec.template);
  const container = obj(arr(task.containers)[0]);
  const limits = obj(obj(container.resources).limits);
  return {
    image: str(container.image) ?? "",
    env: arr(container.env)
      .map(obj)
      .filter((e) => typeof e.value === "string" && !e.valueSource)
      .map((e) => [String(e.name), String(e.value)] as [string, string])
      .sort(([a], [b]) => a.localeCompare(b)),
    memory: str(limits.memory),
    cpu: str(limits.cpu),
    taskTimeoutSeconds: Number(obj(task.timeout).seconds ?? 0),
    // Unset means Cloud Run's default of 3 (the field is in a oneof, so an explicit 0 is kept).
    maxRetries: task.maxRetries === undefined || task.maxRetries === null ? 3 : Number(task.maxRetries),
    // Unset and 0 are one: the job runs every task of an execution at once.
    parallelism: Number(exec.parallelism ?? 0),
    taskCount: Number(exec.taskCount ?? 0),
    serviceAccount: str(task.serviceAccount),
    version: str(obj(job.labels)[VERSION_LABEL]),
  };
}

/** Settings that differ; one the spec leaves unset (service account, limits) is not managed. */
function differences(deployed: Managed, desired: Managed): (keyof Managed)[] {
  return (Object.keys(desired) as (keyof Managed)[]).filter((k) => desired[k] !== undefined && JSON.stringify(deployed[k]) !== JSON.stringify(desired[k]));
}

/** A managed setting's value for people: parallelism 0 is "unset", env as NAME=value pairs. */
function shown(key: keyof Managed, value: Managed[keyof Managed]): string {
  if (value === undefined) return "unset";
  if (key === "parallelism") return value === 0 ? "unset" : String(value);
  if (key === "env") return (value as [string, string][]).map(([k, v]) => `${k}=${v}`).join(",") || "none";
  return String(value);
}

/** Describes the managed settings of a job deployed as `job` (for `shardrun doctor`). */
export function describeJob(job: JobJson): string {
  const m = managed(job);
  return [
    `image ${m.image}`,
    `version ${m.version ?? "unlabelled"}`,
    `parallelism ${shown("parallelism", m.parallelism)}`,
    `${m.taskCount} tasks`,
    `timeout ${m.taskTimeoutSeconds} s`,
    `${m.maxRetries} retries`,
    `service account ${m.serviceAccount ?? "default"}`,
  ].join(", ");
}

/** Output-only Job fields: not sent back on update (etag is, to make the update conditional). */
const OUTPUT_ONLY = [
  "uid",
  "generation",
  "createTime",
  "updateTime",
  "deleteTime",
  "expireTime",
  "creator",
  "lastModifier",
  "observedGeneration",
  "terminalCondition",
  "conditions",
  "executionCount",
  "latestCreatedExecution",
  "reconciling",
  "satisfiesPzs",
];

/** The deployed job with the managed settings replaced and everything else kept. */
function merge(existing: JobJson, desired: JobJson): JobJson {
  const job: Obj = structuredClone(existing);
  for (const key of OUTPUT_ONLY) delete job[key];
  const want = obj(desired.template);
  const wantTask = obj(want.template);
  const wantContainer = obj(arr(wantTask.containers)[0]);
  const exec = obj(job.template);
  const task = obj(exec.template);
  const containers = arr(task.containers).map(obj);
  const first = containers[0] ?? {};
  const names = new Set(arr(wantContainer.env).map((e) => obj(e).name));
  // Secret references were added by someone on purpose and are not shardrun's to drop.
  const secrets = arr(first.env).filter((e) => obj(e).valueSource && !names.has(obj(e).name));
  const resources = obj(first.resources);
  const limits = { ...obj(resources.limits), ...obj(obj(wantContainer.resources).limits) };
  containers[0] = { ...first, image: wantContainer.image, env: [...arr(wantContainer.env), ...secrets], resources: { ...resources, limits } };
  const { serviceAccount, ...wantRest } = wantTask;
  job.template = {
    ...exec,
    parallelism: want.parallelism,
    taskCount: want.taskCount,
    template: { ...task, ...wantRest, containers, ...(serviceAccount ? { serviceAccount } : {}) },
  };
  job.client = desired.client;
  // Labels others set are kept; shardrun's own is replaced.
  const labels = { ...obj(job.labels), ...obj(desired.labels) };
  if (Object.keys(labels).length) job.labels = labels;
  return job;
}

let jobType: protobuf.Type | undefined;

/**
 * A Job as canonical plain JSON, whichever decoder produced it (the gRPC one fills in defaults
 * and marks oneofs; the LRO one returns messages): a protobuf round trip keeps exactly the
 * fields that are set, int64 as strings, enums by name.
 */
export function jobJson(job: unknown): JobJson {
  if (!jobType) {
    const require = createRequire(import.meta.url);
    const protos = join(dirname(require.resolve("@google-cloud/run")), "../protos/protos.json");
    jobType = protobuf.Root.fromJSON(JSON.parse(readFileSync(protos, "utf8"))).lookupType("google.cloud.run.v2.Job");
  }
  const message = jobType.fromObject(obj(typeof (job as { toJSON?: unknown })?.toJSON === "function" ? (job as { toJSON: () => unknown }).toJSON() : job));
  return jobType.toObject(jobType.decode(jobType.encode(message).finish()), { longs: String, enums: String });
}

/**
 * Creates the job, or updates it when a managed setting differs. With `dryRun`, only reads.
 * @example await deployJob({ project, region, name: "shardrun-docs", image, taskTimeoutSeconds: 3600, maxRetries: 3 })
 */
export async function deployJob(input: DeployJobSpec, options: DeployOptions = {}): Promise<DeployResult> {
  const spec = parseSpec(input);
  const desired = buildJob(spec);
  const parent = `projects/${spec.project}/locations/${spec.region}`;
  const name = `${parent}/jobs/${spec.name}`;
  const client = new JobsClient(options.clientOptions ?? {});
  const hints = {
    [GrpcCode.PERMISSION_DENIED]: `deploying needs roles/run.developer on project ${spec.project}, and roles/iam.serviceAccountUser on ${spec.serviceAccount ?? "the job's service account"}`,
  };
  try {
    let existing: JobJson | null;
    try {
      const [job] = await retryTransient(DEFAULT_RETRY, () => client.getJob({ name }));
      existing = jobJson(job);
    } catch (error) {
      if (grpcCode(error) !== GrpcCode.NOT_FOUND) throw cloudRunError(`could not read Cloud Run job ${name}`, error, hints);
      existing = null;
    }
    if (!existing) {
      if (options.dryRun) return { action: "create", job: jobJson({ name, ...desired }), changes: [] };
      // Not retried: a create that timed out may have happened; the next deploy will see it.
      try {
        const [operation] = await client.createJob({ parent, jobId: spec.name, job: desired });
        const [job] = await operation.promise();
        return { action: "create", job: jobJson(job), changes: [] };
      } catch (error) {
        throw cloudRunError(`could not create Cloud Run job ${name}`, error, hints);
      }
    }
    const [have, want] = [managed(existing), managed(desired)];
    const changes = differences(have, want);
    if (!changes.length) return { action: "unchanged", job: existing, changes };
    const details = changes.map((k) => `${k} ${shown(k, have[k])} -> ${shown(k, want[k])}`);
    const job = merge(existing, desired);
    if (options.dryRun) return { action: "update", job: jobJson(job), changes, details };
    try {
      // The etag read above makes this conditional: a concurrent change fails it (ABORTED).
      const [operation] = await client.updateJob({ job });
      const [updated] = await operation.promise();
      return { action: "update", job: jobJson(updated), changes, details };
    } catch (error) {
      throw cloudRunError(`could not update Cloud Run job ${name}`, error, {
        ...hints,
        [GrpcCode.ABORTED]: "the job changed while deploying: deploy again",
        [GrpcCode.FAILED_PRECONDITION]: "the job changed while deploying: deploy again",
      });
    }
  } finally {
    await client.close();
  }
}
