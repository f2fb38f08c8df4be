/**
 * `schedules sync`: makes Cloud Scheduler match the schedules in the job definitions, through
 * the Cloud Scheduler API v1. Every schedule is one Cloud Scheduler job `shardrun-<schedule>`
 * that POSTs to the service's fire endpoint with an OIDC token; one more job,
 * `shardrun-reconcile`, calls `/v1/reconcile` every five minutes.
 *
 * Only jobs that shardrun made are ever changed or deleted: their id starts with `shardrun-` and
 * their description with `shardrun: ` (v1 jobs have no labels). A job of that name that shardrun
 * did not make is an error, not something to take over. The whole diff is computed from one
 * listing before anything changes, and a dry run makes that listing its only call.
 *
 * This is the only file that imports @google-cloud/scheduler.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { CloudSchedulerClient } from "@google-cloud/scheduler";
import { googleAuthLibrary, grpc, protobuf, type ClientOptions } from "google-gax";
import { z } from "zod";
import { InvalidInputError, ShardrunError, UsageError, errorMessage } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";
import { ENV } from "../config/env.js";
import type { ListedSchedule } from "./schedule.js";

/** Prefix of every Cloud Scheduler job id shardrun manages. */
export const JOB_ID_PREFIX = "shardrun-";
/** Start of the description of every job shardrun made: its ownership mark. */
export const MANAGED_MARK = "shardrun: ";
export const RECONCILE_JOB_ID = "shardrun-reconcile";

export const SyncSpec = z.strictObject({
  project: z.string().min(1),
  /** Cloud Scheduler location, e.g. "europe-west1". */
  region: z.string().min(1),
  /** The scheduler service's URL, e.g. "https://shardrun-scheduler-abc123-ew.a.run.app". */
  serviceUrl: z
    .string()
    .regex(/^https?:\/\/[^/?#\s]+(?:\/[^?#\s]*)?$/, "Expected an http(s) URL without query, like https://shardrun-abc123-ew.a.run.app")
    .transform((u) => u.replace(/\/+$/, "")),
  /** The identity Cloud Scheduler mints OIDC tokens for; it needs roles/run.invoker on the service. */
  serviceAccountEmail: z.string().regex(/^[^@\s]+@[^@\s]+$/, "Expected a service account email"),
  /** The tokens' audience. @default serviceUrl */
  audience: z.string().min(1).optional(),
  /** Also keep the `shardrun-reconcile` job. @default true */
  reconcile: z.boolean().default(true),
  /** @default "*\/5 * * * *" */
  reconcileCron: z.string().default("*/5 * * * *"),
});
export type SyncSpec = z.input<typeof SyncSpec>;

export type SyncableSchedule = Pick<ListedSchedule, "name" | "job" | "cron" | "timeZone" | "paused" | "description">;

export interface SyncSchedulesOptions extends SyncSpec {
  schedules: readonly SyncableSchedule[];
  /** Only list the jobs and return the diff; change nothing. @default false */
  dryRun?: boolean;
  /**
   * Jobs whose schedules are unknown now (their definitions do not build): their Cloud Scheduler
   * jobs are kept as they are instead of deleted. @default []
   */
  keepJobsOf?: readonly string[];
  /** Passed to the client (tests point it at a fake). @default {} */
  clientOptions?: ClientOptions;
}

/** A Cloud Scheduler Job as canonical plain JSON: unset fields left out, int64 as strings, bytes as base64. */
export type SchedulerJobJson = Record<string, unknown>;

export interface SyncChange {
  /** Job id, e.g. "shardrun-docs-nightly". */
  id: string;
  /** The schedule it fires; absent for the reconcile job and for deleted jobs. */
  schedule?: string;
  /** The managed fields that differ (update), or the state change (pause, resume). */
  changes: string[];
  /** The job as sent (create, update), or as found (pause, resume, delete). */
  job: SchedulerJobJson;
}

export interface SyncResult {
  dryRun: boolean;
  /** projects/<p>/locations/<r> */
  parent: string;
  create: SyncChange[];
  update: SyncChange[];
  pause: SyncChange[];
  resume: SyncChange[];
  delete: SyncChange[];
  /** Ids of managed jobs that already match. */
  unchanged: string[];
  /** Ids of managed jobs left alone because their job's schedules are unknown (see `keepJobsOf`). */
  kept?: string[];
}

/** Cloud Scheduler retries a failed fire; a fire is idempotent per scheduled time, so retrying is safe. */
const FIRE_RETRY = { retryCount: 3, minBackoffDuration: { seconds: 10 }, maxBackoffDuration: { seconds: 300 }, maxDoublings: 3, maxRetryDuration: { seconds: 0 } };
/** A reconcile is not retried: the next one is minutes away. */
const RECONCILE_RETRY = { retryCount: 0, minBackoffDuration: { seconds: 10 }, maxBackoffDuration: { seconds: 60 }, maxDoublings: 1, maxRetryDuration: { seconds: 0 } };
/** Planning reads the whole source: give it time before Cloud Scheduler calls the attempt failed. */
const ATTEMPT_DEADLINE = { seconds: 600 };
const UPDATE_MASK = ["description", "schedule", "time_zone", "http_target", "retry_config", "attempt_deadline"];
const JSON_BODY = Buffer.from("{}").toString("base64");

/**
 * Where the Cloud Scheduler client connects. With SHARDRUN_CLOUD_SCHEDULER_ENDPOINT=host:port:
 * that endpoint in plaintext with no credentials (an emulator or the test fake); otherwise
 * cloudscheduler.googleapis.com with Application Default Credentials.
 */
export function cloudSchedulerClientOptions(env: NodeJS.ProcessEnv = process.env): ClientOptions | undefined {
  const endpoint = env[ENV.cloudSchedulerEndpoint];
  if (!endpoint) return undefined;
  const m = /^([^:/]+):(\d{1,5})$/.exec(endpoint);
  if (!m) throw new UsageError(`${ENV.cloudSchedulerEndpoint}: expected host:port, got "${endpoint}"`);
  return { apiEndpoint: m[1]!, port: Number(m[2]), sslCreds: grpc.credentials.createInsecure(), authClient: new googleAuthLibrary.PassThroughClient() };
}

function parseSpec(input: SyncSpec): z.infer<typeof SyncSpec> {
  // Only the spec's own fields: callers pass their whole options bag.
  const { project, region, serviceUrl, serviceAccountEmail, audience, reconcile, reconcileCron } = input;
  const parsed = SyncSpec.safeParse({ project, region, serviceUrl, serviceAccountEmail, audience, reconcile, reconcileCron });
  if (!parsed.success) throw new InvalidInputError(`schedules sync: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

export function parentOf(project: string, region: string): string {
  return `projects/${project}/locations/${region}`;
}

/** The Cloud Scheduler jobs the definitions call for, by id, as they would be sent. */
export function desiredJobs(input: SyncSpec & { schedules: readonly SyncableSchedule[] }): Map<string, { schedule?: SyncableSchedule; job: SchedulerJobJson }> {
  const spec = parseSpec(input);
  const parent = parentOf(spec.project, spec.region);
  const oidcToken = { serviceAccountEmail: spec.serviceAccountEmail, audience: spec.audience ?? spec.serviceUrl };
  const target = (path: string) => ({ uri: `${spec.serviceUrl}${path}`, httpMethod: "POST", headers: { "Content-Type": "application/json" }, body: JSON_BODY, oidcToken });
  const out = new Map<string, { schedule?: SyncableSchedule; job: SchedulerJobJson }>();
  for (const s of input.schedules) {
    const id = `${JOB_ID_PREFIX}${s.name}`;
    const job = {
      name: `${parent}/jobs/${id}`,
      description: `${MANAGED_MARK}schedule ${s.name} of job ${s.job}${s.description ? ` — ${s.description}` : ""}`.slice(0, 500),
      schedule: s.cron,
      timeZone: s.timeZone,
      httpTarget: target(`/v1/schedules/${s.name}:fire`),
      retryConfig: FIRE_RETRY,
      attemptDeadline: ATTEMPT_DEADLINE,
    };
    out.set(id, { schedule: s, job: jobJson(job) });
  }
  if (spec.reconcile) {
    const job = {
      name: `${parent}/jobs/${RECONCILE_JOB_ID}`,
      description: `${MANAGED_MARK}reconcile: continue, relaunch and finish the runs in flight`,
      schedule: spec.reconcileCron,
      timeZone: "Etc/UTC",
      httpTarget: target("/v1/reconcile"),
      retryConfig: RECONCILE_RETRY,
      attemptDeadline: ATTEMPT_DEADLINE,
    };
    out.set(RECONCILE_JOB_ID, { job: jobJson(job) });
  }
  return out;
}

let jobType: protobuf.Type | undefined;

/** A Job as canonical JSON, whatever produced it (our literal, or the decoder's message with defaults). */
export function jobJson(job: unknown): SchedulerJobJson {
  if (!jobType) {
    const require = createRequire(import.meta.url);
    const protos = join(dirname(require.resolve("@google-cloud/scheduler")), "../protos/protos.json");
    jobType = protobuf.Root.fromJSON(JSON.parse(readFileSync(protos, "utf8"))).lookupType("google.cloud.scheduler.v1.Job");
  }
  const plain = typeof (job as { toJSON?: unknown })?.toJSON === "function" ? (job as { toJSON: () => unknown }).toJSON() : job;
  const message = jobType.fromObject((plain ?? {}) as Record<string, unknown>);
  return jobType.toObject(jobType.decode(jobType.encode(message).finish()), { longs: String, enums: String, bytes: String });
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const seconds = (d: unknown): number => Number(obj(d).seconds ?? 0) + Number(obj(d).nanos ?? 0) / 1e9;

/**
 * A time zone as one name per zone: Cloud Scheduler gives an alias back under another name
 * (`UTC` as `Etc/UTC`), and the runtime's tz database knows both as one.
 */
export function canonicalTimeZone(zone: string): string {
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return zone; // unknown here: compared as written
  }
}

/**
 * A URI as one string whatever its percent-encoding: Cloud Scheduler may give a target back with
 * `:` in its path encoded (`…/x%3Afire`). Scheme and host are lowercased by the URL parser; each
 * path segment, the query and the fragment are compared decoded.
 */
export function canonicalUri(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return uri;
  }
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  };
  const path = url.pathname.split("/").map(decode).join("/");
  return `${url.protocol}//${url.host}${path}${decode(url.search)}${decode(url.hash)}`;
}

/**
 * The fields shardrun manages, in a form two jobs compare by: canonical, since Cloud Scheduler
 * gives jobs back in its own spelling (so a sync right after a sync changes nothing). Headers it
 * does not set are not its business.
 */
function managed(job: SchedulerJobJson): Record<string, unknown> {
  const http = obj(job.httpTarget);
  const headers = obj(http.headers);
  const contentType = Object.entries(headers).find(([k]) => k.toLowerCase() === "content-type")?.[1];
  const retry = obj(job.retryConfig);
  const oidc = obj(http.oidcToken);
  return {
    description: job.description ?? "",
    schedule: String(job.schedule ?? "").trim().replace(/\s+/g, " "),
    timeZone: canonicalTimeZone(String(job.timeZone || "Etc/UTC")),
    uri: canonicalUri(String(http.uri ?? "")),
    httpMethod: http.httpMethod ?? "",
    contentType: contentType ?? "",
    body: http.body ?? "",
    oidcServiceAccount: oidc.serviceAccountEmail ?? "",
    oidcAudience: oidc.audience ?? "",
    retryCount: Number(retry.retryCount ?? 0),
    minBackoff: seconds(retry.minBackoffDuration),
    maxBackoff: seconds(retry.maxBackoffDuration),
    maxDoublings: Number(retry.maxDoublings ?? 0),
    maxRetryDuration: seconds(retry.maxRetryDuration),
    attemptDeadline: seconds(job.attemptDeadline),
  };
}

function differences(existing: SchedulerJobJson, desired: SchedulerJobJson): string[] {
  const a = managed(existing);
  const b = managed(desired);
  return Object.keys(b).filter((k) => a[k] !== b[k]);
}

const idOf = (name: unknown) => String(name ?? "").split("/").pop() ?? "";
export const isManaged = (job: SchedulerJobJson): boolean => idOf(job.name).startsWith(JOB_ID_PREFIX) && String(job.description ?? "").startsWith(MANAGED_MARK);

/** The diff between the jobs the definitions call for and the jobs found (every job of the location). Pure. */
export function diffJobs(parent: string, desired: ReturnType<typeof desiredJobs>, found: readonly SchedulerJobJson[], keepJobsOf: readonly string[] = []): Omit<SyncResult, "dryRun"> {
  const result: Omit<SyncResult, "dryRun"> = { parent, create: [], update: [], pause: [], resume: [], delete: [], unchanged: [] };
  const existing = new Map(found.map((j) => [idOf(j.name), j]));
  for (const [id, want] of desired) {
    const schedule = want.schedule ? { schedule: want.schedule.name } : {};
    const paused = want.schedule?.paused === true;
    const have = existing.get(id);
    if (!have) {
      result.create.push({ id, ...schedule, changes: [], job: want.job });
      if (paused) result.pause.push({ id, ...schedule, changes: ["state: new -> PAUSED"], job: want.job });
      continue;
    }
    if (!isManaged(have)) {
      throw new InvalidInputError(
        `Cloud Scheduler job ${id} exists but shardrun did not make it (its description does not start with "${MANAGED_MARK.trim()}"): rename the schedule, or delete that job if it is a leftover`,
      );
    }
    const changes = differences(have, want.job);
    // A failed update leaves the job UPDATE_FAILED, and it does not run until an update succeeds.
    if (have.state === "UPDATE_FAILED") changes.push("state UPDATE_FAILED");
    if (changes.length) result.update.push({ id, ...schedule, changes, job: want.job });
    if (paused && have.state === "ENABLED") result.pause.push({ id, ...schedule, changes: ["state: ENABLED -> PAUSED"], job: have });
    else if (!paused && have.state === "PAUSED") result.resume.push({ id, ...schedule, changes: ["state: PAUSED -> ENABLED"], job: have });
    else if (!changes.length) result.unchanged.push(id);
  }
  for (const [id, have] of existing) {
    if (desired.has(id) || !isManaged(have)) continue;
    const owner = /^shardrun: schedule \S+ of job ([a-z][a-z0-9-]*)/.exec(String(have.description ?? ""))?.[1];
    if (owner && keepJobsOf.includes(owner)) (result.kept ??= []).push(id);
    else result.delete.push({ id, changes: [], job: have });
  }
  return result;
}

/** A Cloud Scheduler API error as a ShardrunError whose message says what to do. */
function schedulerError(what: string, error: unknown, project: string): ShardrunError {
  const code = (error as { code?: unknown } | null)?.code;
  const advice =
    code === grpc.status.PERMISSION_DENIED
      ? `syncing needs roles/cloudscheduler.admin on project ${project}, and roles/iam.serviceAccountUser on the OIDC service account`
      : code === grpc.status.UNAUTHENTICATED
        ? "no valid credentials: run `gcloud auth application-default login` or give the process a service account"
        : code === grpc.status.ALREADY_EXISTS || code === grpc.status.NOT_FOUND
          ? "the jobs changed while syncing: sync again"
          : undefined;
  return new ShardrunError(code === grpc.status.INVALID_ARGUMENT ? "INVALID_INPUT" : "INTERNAL", `${what}: ${errorMessage(error)}${advice ? ` (${advice})` : ""}`, { cause: error });
}

/**
 * Creates, updates, pauses, resumes and deletes Cloud Scheduler jobs so that they match the
 * schedules. With `dryRun`, only lists the jobs and returns what it would do.
 * @example await syncSchedules({ project, region, serviceUrl, serviceAccountEmail, schedules: await listSchedules() })
 */
export async function syncSchedules(o: SyncSchedulesOptions): Promise<SyncResult> {
  const spec = parseSpec(o);
  const desired = desiredJobs(o);
  const parent = parentOf(spec.project, spec.region);
  const client = new CloudSchedulerClient(o.clientOptions ?? {});
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw schedulerError(what, e, spec.project);
    }
  };
  try {
    const found = await call(`could not list the Cloud Scheduler jobs of ${parent}`, async () => {
      const jobs: SchedulerJobJson[] = [];
      for await (const job of client.listJobsAsync({ parent }, { autoPaginate: false })) jobs.push(jobJson(job));
      return jobs;
    });
    const diff = { dryRun: o.dryRun === true, ...diffJobs(parent, desired, found, o.keepJobsOf) };
    if (o.dryRun) return diff;
    for (const c of diff.create) await call(`could not create ${c.id}`, () => client.createJob({ parent, job: c.job }));
    for (const c of diff.update) await call(`could not update ${c.id}`, () => client.updateJob({ job: c.job, updateMask: { paths: UPDATE_MASK } }));
    for (const c of diff.pause) await call(`could not pause ${c.id}`, () => client.pauseJob({ name: `${parent}/jobs/${c.id}` }));
    for (const c of diff.resume) await call(`could not resume ${c.id}`, () => client.resumeJob({ name: `${parent}/jobs/${c.id}` }));
    for (const c of diff.delete) await call(`could not delete ${c.id}`, () => client.deleteJob({ name: `${parent}/jobs/${c.id}` }));
    return diff;
  } finally {
    await client.close();
  }
}

/**
 * The jobs shardrun made in a location, as Cloud Scheduler gives them back (for `shardrun
 * doctor`, which compares their OIDC audiences with the service's). Only reads.
 */
export async function listManagedJobs(o: { project: string; region: string; clientOptions?: ClientOptions }): Promise<SchedulerJobJson[]> {
  const parent = parentOf(o.project, o.region);
  const client = new CloudSchedulerClient(o.clientOptions ?? {});
  try {
    const jobs: SchedulerJobJson[] = [];
    for await (const job of client.listJobsAsync({ parent }, { autoPaginate: false })) {
      const json = jobJson(job);
      if (isManaged(json)) jobs.push(json);
    }
    return jobs;
  } catch (e) {
    throw schedulerError(`could not list the Cloud Scheduler jobs of ${parent}`, e, o.project);
  } finally {
    await client.close();
  }
}
