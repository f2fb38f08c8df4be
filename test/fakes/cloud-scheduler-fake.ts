/**
 * A wire-level fake of the Cloud Scheduler API v1: an in-process gRPC server built from the
 * protos @google-cloud/scheduler ships, so that the real client library (encoding, pagination,
 * field masks, status codes) is what `syncSchedules` talks to.
 *
 * Implemented: ListJobs (paged), GetJob, CreateJob, UpdateJob (with or without an update mask),
 * DeleteJob, PauseJob, ResumeJob. It fills in the output-only fields (state, userUpdateTime,
 * scheduleTime from croner) and checks what the service documents: job ids of letters, digits,
 * hyphens and underscores; five-field unix-cron; tz database time zones; one target; HTTP
 * attempt deadlines of 15 s to 30 min; pause only an enabled job, resume only a paused one.
 * Every request is recorded; faults can be injected per method.
 *
 * It gives jobs back as the real service does, not as they were sent, so that a sync comparing
 * the two must compare canonical forms: a time zone alias comes back as its canonical name
 * (`UTC` → `Etc/UTC`, as Cloud Scheduler returns it), and `:` in the path of an HTTP target's
 * URI comes back percent-encoded (`…/x:fire` → `…/x%3Afire`; `encodeUriColons`).
 *
 * Not known to match the real service (tests must not lean on it): the exact error texts, and
 * the `User-Agent: Google-Cloud-Scheduler` header the fake adds to stored HTTP targets (Cloud
 * Scheduler documents sending it; whether a Job read back shows it is not documented), which is
 * there to prove that sync ignores headers it did not set.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Cron } from "croner";
import { googleAuthLibrary, grpc, protobuf, type ClientOptions } from "google-gax";
import { protoServiceDefinition, shutdownServer } from "./grpc-service.js";

const require = createRequire(import.meta.url);
const root = protobuf.Root.fromJSON(JSON.parse(readFileSync(join(dirname(require.resolve("@google-cloud/scheduler")), "../protos/protos.json"), "utf8")));
root.resolveAll();
const SERVICE = "google.cloud.scheduler.v1.CloudScheduler";
const toObject = { longs: String, enums: String, bytes: String } as const;

/** Decoded protobuf JSON. */
type Plain = Record<string, any>;
export type SchedulerMethod = "ListJobs" | "GetJob" | "CreateJob" | "UpdateJob" | "DeleteJob" | "PauseJob" | "ResumeJob";
/** Reads: the only calls a dry run may make. */
export const READ_METHODS: ReadonlySet<SchedulerMethod> = new Set(["ListJobs", "GetJob"]);

export interface CloudSchedulerFakeOptions {
  /** @default "fake-project" */
  project?: string;
  /** @default "europe-west1" */
  region?: string;
  /** Largest page ListJobs returns. @default 500 */
  maxPageSize?: number;
}

class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const OUTPUT_ONLY = ["userUpdateTime", "state", "status", "scheduleTime", "lastAttemptTime"];
/**
 * Time zone aliases and the names Cloud Scheduler gives them back as. Only `UTC` is known (from
 * a real service); the live suite (test/live) prints what a real one returns.
 */
const CANONICAL_ZONES: Record<string, string> = { UTC: "Etc/UTC" };

/** The URI with every `:` of its path, query and fragment percent-encoded. */
function encodeColons(uri: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]*)(.*)$/i.exec(uri);
  return m ? m[1]! + m[2]!.replace(/:/g, "%3A") : uri;
}
const TARGETS = ["pubsubTarget", "appEngineHttpTarget", "httpTarget"];
const ts = (date: Date) => ({ seconds: String(Math.floor(date.getTime() / 1000)), nanos: (date.getTime() % 1000) * 1e6 });
const camel = (path: string) => path.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const duration = (d: Plain | undefined) => Number(d?.seconds ?? 0) + Number(d?.nanos ?? 0) / 1e9;

function serviceDefinition(methods: readonly SchedulerMethod[]): grpc.ServiceDefinition {
  return protoServiceDefinition(root, SERVICE, methods, toObject);
}

export class CloudSchedulerFake {
  readonly project: string;
  readonly region: string;
  /** Every request received, in order, as decoded JSON. */
  readonly requests: { method: SchedulerMethod; request: Plain }[] = [];
  readonly #maxPageSize: number;
  readonly #server = new grpc.Server();
  /** Jobs by full name, in creation order (ListJobs order). */
  readonly #jobs = new Map<string, Plain>();
  readonly #faults = new Map<SchedulerMethod, grpc.status[]>();
  /** Whether a target URI's `:` (after its host) comes back as `%3A`. @default true */
  encodeUriColons = true;
  #port = 0;

  private constructor(options: CloudSchedulerFakeOptions) {
    this.project = options.project ?? "fake-project";
    this.region = options.region ?? "europe-west1";
    this.#maxPageSize = options.maxPageSize ?? 500;
  }

  static async start(options: CloudSchedulerFakeOptions = {}): Promise<CloudSchedulerFake> {
    const fake = new CloudSchedulerFake(options);
    await fake.#listen();
    return fake;
  }

  get port(): number {
    return this.#port;
  }

  get parent(): string {
    return `projects/${this.project}/locations/${this.region}`;
  }

  /** Options for the @google-cloud/scheduler client: this server, no TLS, no credentials. */
  clientOptions(): ClientOptions {
    return { apiEndpoint: "127.0.0.1", port: this.#port, sslCreds: grpc.credentials.createInsecure(), authClient: new googleAuthLibrary.PassThroughClient() };
  }

  jobPath(id: string): string {
    return `${this.parent}/jobs/${id}`;
  }

  /** Requests of one method, in order. */
  calls(method: SchedulerMethod): Plain[] {
    return this.requests.filter((r) => r.method === method).map((r) => r.request);
  }

  /** Methods called since request number `from` that are not reads. */
  writesSince(from = 0): SchedulerMethod[] {
    return this.requests.slice(from).map((r) => r.method).filter((m) => !READ_METHODS.has(m));
  }

  /** A stored job by id (a copy), or undefined. */
  job(id: string): Plain | undefined {
    const job = this.#jobs.get(this.jobPath(id));
    return job ? structuredClone(job) : undefined;
  }

  /** Ids of the stored jobs, in creation order. */
  ids(): string[] {
    return [...this.#jobs.keys()].map((n) => n.split("/").pop()!);
  }

  /** Creates a job without going through the API (one someone else made), ENABLED unless `state` says otherwise. */
  putJob(id: string, job: Plain, state: "ENABLED" | "PAUSED" | "UPDATE_FAILED" = "ENABLED"): void {
    this.#store(this.jobPath(id), { ...job, name: this.jobPath(id) }, state);
  }

  /** Makes the next `times` calls of `method` fail with `code` before anything happens. */
  inject(method: SchedulerMethod, code: grpc.status = grpc.status.UNAVAILABLE, times = 1): void {
    const queue = this.#faults.get(method) ?? [];
    for (let i = 0; i < times; i++) queue.push(code);
    this.#faults.set(method, queue);
  }

  async close(): Promise<void> {
    await shutdownServer(this.#server);
  }

  async #listen(): Promise<void> {
    const handlers: Record<SchedulerMethod, (req: Plain) => Plain> = {
      ListJobs: (req) => this.#list(req),
      GetJob: (req) => this.#get(req.name),
      CreateJob: (req) => this.#create(req),
      UpdateJob: (req) => this.#update(req),
      DeleteJob: (req) => {
        this.#get(req.name);
        this.#jobs.delete(req.name);
        return {};
      },
      PauseJob: (req) => this.#setState(req.name, "ENABLED", "PAUSED"),
      ResumeJob: (req) => this.#setState(req.name, "PAUSED", "ENABLED"),
    };
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [method, fn] of Object.entries(handlers) as [SchedulerMethod, (req: Plain) => Plain][]) {
      impl[method] = ((call: grpc.ServerUnaryCall<Plain, Plain>, callback: grpc.sendUnaryData<Plain>) => {
        this.requests.push({ method, request: call.request });
        const fault = this.#faults.get(method)?.shift();
        if (fault !== undefined) return callback({ code: fault, details: "injected fault" });
        try {
          callback(null, fn(call.request));
        } catch (error) {
          callback(error instanceof StatusError ? { code: error.code, details: error.message } : { code: grpc.status.INTERNAL, details: String(error) });
        }
      }) as grpc.handleUnaryCall<Plain, Plain>;
    }
    this.#server.addService(serviceDefinition(Object.keys(handlers) as SchedulerMethod[]), impl);
    this.#port = await new Promise<number>((resolve, reject) =>
      this.#server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
    );
  }

  #checkParent(parent: string): void {
    if (parent !== this.parent) throw new StatusError(grpc.status.NOT_FOUND, `Location '${parent}' was not found`);
  }

  #get(name: string): Plain {
    const job = this.#jobs.get(name);
    if (!job) throw new StatusError(grpc.status.NOT_FOUND, `Job not found: ${name}`);
    return job;
  }

  #list(req: Plain): Plain {
    this.#checkParent(req.parent);
    const all = [...this.#jobs.values()];
    const start = Number(req.pageToken || 0);
    const size = Math.min(this.#maxPageSize, req.pageSize || this.#maxPageSize);
    return { jobs: all.slice(start, start + size), nextPageToken: start + size < all.length ? String(start + size) : "" };
  }

  #create(req: Plain): Plain {
    this.#checkParent(req.parent);
    const job: Plain = req.job ?? {};
    if (!job.name) throw new StatusError(grpc.status.INVALID_ARGUMENT, "job.name is required");
    if (!job.name.startsWith(`${this.parent}/jobs/`)) throw new StatusError(grpc.status.INVALID_ARGUMENT, `job.name ${job.name} is not in ${this.parent}`);
    if (this.#jobs.has(job.name)) throw new StatusError(grpc.status.ALREADY_EXISTS, `Job ${job.name} already exists`);
    return this.#store(job.name, job, "ENABLED");
  }

  #update(req: Plain): Plain {
    const current = this.#get(req.job?.name ?? "");
    const paths: string[] = req.updateMask?.paths ?? [];
    let next: Plain;
    if (!paths.length) {
      next = { ...req.job };
    } else {
      next = structuredClone(current);
      for (const path of paths) {
        const field = camel(path);
        if (OUTPUT_ONLY.includes(field) || field === "name") throw new StatusError(grpc.status.INVALID_ARGUMENT, `update_mask path ${path} cannot be updated`);
        if (!(field in root.lookupType("google.cloud.scheduler.v1.Job").fields)) throw new StatusError(grpc.status.INVALID_ARGUMENT, `update_mask path ${path} is not a Job field`);
        // Setting one target of the oneof clears the others.
        if (TARGETS.includes(field)) for (const t of TARGETS) delete next[t];
        if (req.job[field] === undefined || req.job[field] === null) delete next[field];
        else next[field] = req.job[field];
      }
    }
    return this.#store(current.name, next, current.state === "PAUSED" ? "PAUSED" : "ENABLED");
  }

  #setState(name: string, from: string, to: string): Plain {
    const job = this.#get(name);
    if (job.state !== from) throw new StatusError(grpc.status.FAILED_PRECONDITION, `Job ${name} is ${job.state}, not ${from}`);
    job.state = to;
    job.userUpdateTime = ts(new Date());
    if (to === "PAUSED") delete job.scheduleTime;
    else job.scheduleTime = this.#nextRun(job);
    return job;
  }

  #nextRun(job: Plain): Plain | undefined {
    const next = new Cron(job.schedule, { mode: "5-part", timezone: job.timeZone || "Etc/UTC", paused: true }).nextRun();
    return next ? ts(next) : undefined;
  }

  /** Validates a job as Cloud Scheduler documents it and stores it with its output-only fields. */
  #store(name: string, input: Plain, state: string): Plain {
    const job: Plain = structuredClone(input);
    for (const f of OUTPUT_ONLY) delete job[f];
    const id = name.split("/").pop()!;
    if (!/^[A-Za-z0-9_-]{1,500}$/.test(id)) throw new StatusError(grpc.status.INVALID_ARGUMENT, `job id ${id} may hold only letters, digits, hyphens and underscores (at most 500)`);
    if ((job.description ?? "").length > 500) throw new StatusError(grpc.status.INVALID_ARGUMENT, "description is longer than 500 characters");
    if (TARGETS.filter((t) => job[t]).length !== 1) throw new StatusError(grpc.status.INVALID_ARGUMENT, "exactly one target is required");
    if (typeof job.schedule !== "string" || job.schedule.trim().split(/\s+/).length !== 5) throw new StatusError(grpc.status.INVALID_ARGUMENT, `schedule "${job.schedule}" is not unix-cron (five fields)`);
    job.timeZone ||= "Etc/UTC";
    job.timeZone = CANONICAL_ZONES[job.timeZone] ?? job.timeZone;
    try {
      new Cron(job.schedule, { mode: "5-part", timezone: job.timeZone, paused: true });
    } catch (e) {
      throw new StatusError(grpc.status.INVALID_ARGUMENT, `schedule "${job.schedule}" in time zone "${job.timeZone}": ${String(e)}`);
    }
    if (job.httpTarget) {
      const http: Plain = job.httpTarget;
      if (!/^https?:\/\//.test(http.uri ?? "")) throw new StatusError(grpc.status.INVALID_ARGUMENT, `http_target.uri "${http.uri}" must be an http(s) URL`);
      if (http.oidcToken && !http.oidcToken.serviceAccountEmail) throw new StatusError(grpc.status.INVALID_ARGUMENT, "oidc_token.service_account_email is required");
      if (job.attemptDeadline && (duration(job.attemptDeadline) < 15 || duration(job.attemptDeadline) > 1800)) {
        throw new StatusError(grpc.status.INVALID_ARGUMENT, "attempt_deadline of an HTTP target must be 15 s to 30 min");
      }
      http.httpMethod ||= "POST";
      if (this.encodeUriColons) http.uri = encodeColons(http.uri);
      http.headers = { ...http.headers, "User-Agent": "Google-Cloud-Scheduler" };
    }
    if (job.retryConfig && (job.retryConfig.retryCount < 0 || job.retryConfig.retryCount > 5)) throw new StatusError(grpc.status.INVALID_ARGUMENT, "retry_count must be 0 to 5");
    job.name = name;
    job.state = state;
    job.userUpdateTime = ts(new Date());
    if (state === "ENABLED") job.scheduleTime = this.#nextRun(job);
    this.#jobs.set(name, job);
    return job;
  }
}
