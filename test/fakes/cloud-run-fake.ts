/**
 * A wire-level fake of the Cloud Run Admin API v2: an in-process gRPC server built from the
 * protos @google-cloud/run ships, so that the real client library (encoding, LRO decoding,
 * pagination, status codes) is what the launcher and deploy code talk to. Executions run for
 * real: each RunJob starts the job's tasks through a backing Launcher (the compiled
 * LocalLauncher from `compiledLocalLauncher()` in test/contract/launcher-contract.ts: child
 * processes with CLOUD_RUN_* env, timeouts, retries), and its status is mapped into Execution
 * and Task resources the way Cloud Run reports them. The job's image and command are not run:
 * the backing launcher's command is (WORKER_COMMAND for a whole run).
 *
 * Implemented: Jobs.GetJob/CreateJob/UpdateJob/RunJob, Executions.GetExecution/ListExecutions/
 * CancelExecution, Tasks.ListTasks, Operations.GetOperation, and Services.GetService/GetIamPolicy
 * (test/fakes/cloud-run-services.ts). Every request is recorded, and
 * faults can be injected per method: UNAVAILABLE or RESOURCE_EXHAUSTED before anything happens,
 * or a lost response (the work is done, the client gets UNAVAILABLE or DEADLINE_EXCEEDED).
 *
 * It refuses what Cloud Run documents refusing, so that code cannot lean on leniency:
 * - a parallelism above the task count (execution.proto: "Must be <= task_count";
 *   google-cloud-node issue 4908), on CreateJob, UpdateJob and RunJob with a task count
 *   override. A job whose parallelism is 0 (unset) runs each execution with all its tasks at
 *   once (execution_template.proto: "the maximum possible value will be used");
 * - RunJob overrides beyond task count, timeout and container env/args (there is no
 *   parallelism or retries override in the proto, so a request cannot carry one).
 * And it leaves undocumented behaviour to the test, so that code cannot depend on one guess:
 * - the order ListExecutions returns executions in (`listOrder`), and how long a new
 *   execution stays invisible to it (`listDelayMs`);
 * - whether override env shows in `Execution.template` (`overrideEnvInTemplate`);
 * - a job's history of finished executions (`addFinishedExecutions`): Cloud Run keeps the
 *   last 1,000 completed executions of a job.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { googleAuthLibrary, grpc, protobuf, type ClientOptions } from "google-gax";
import { FakeServices } from "./cloud-run-services.js";
import { protoServiceDefinition, shutdownServer, StatusError } from "./grpc-service.js";
import { seededRandom } from "../../src/core/time.js";
import { isTerminal, type ExecutionStatus, type Launcher, type TaskStatus } from "../../src/launcher/port.js";

const require = createRequire(import.meta.url);
const root = protobuf.Root.fromJSON(JSON.parse(readFileSync(join(dirname(require.resolve("@google-cloud/run")), "../protos/protos.json"), "utf8")));
root.resolveAll();
const V2 = "google.cloud.run.v2";
const toObject = { longs: String, enums: String } as const;

/** Decoded protobuf JSON: the fake reads only a few fields and passes the rest through. */
type Plain = Record<string, any>;
export type FakeMethod =
  | "GetJob"
  | "CreateJob"
  | "UpdateJob"
  | "RunJob"
  | "GetExecution"
  | "ListExecutions"
  | "CancelExecution"
  | "ListTasks"
  | "GetOperation"
  | "GetService"
  | "GetIamPolicy";
export type Fault = { kind: "unavailable" } | { kind: "quota" } | { kind: "lost-response"; code?: "UNAVAILABLE" | "DEADLINE_EXCEEDED" };

export type ListOrder = "newest-first" | "oldest-first" | "random";

export interface CloudRunFakeOptions {
  /** Starts each execution's tasks; its task program is what every job's container "runs". */
  backing: Launcher;
  /** Seed of the "random" list order. @default 1 */
  seed?: number;
  /** @default "fake-project" */
  project?: string;
  /** @default "europe-west1" */
  region?: string;
}

interface FakeExecution {
  name: string;
  id: string;
  jobId: string;
  createTime: Date;
  /** A finished execution from the job's history (addFinishedExecutions): no backing tasks. */
  past?: ExecutionStatus;
  taskCount: number;
  parallelism: number;
  maxRetries: number;
  timeoutSeconds: number;
  template: Plain;
  /** The env the RunJob overrides set (shown in `template` only with overrideEnvInTemplate). */
  overrideEnv: Plain[];
  cancelling: boolean;
}

/** execution.proto: parallelism "Must be <= task_count"; 0 means unset. */
function checkParallelism(parallelism: number, taskCount: number, where: string): void {
  if (parallelism > taskCount) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `${where}: parallelism ${parallelism} must be less than or equal to task_count ${taskCount}`);
  }
}

/** An execution template as it would read without the override env. */
function withoutEnv(template: Plain, overrideEnv: Plain[]): Plain {
  const names = new Set(overrideEnv.map((e) => e.name));
  const copy = structuredClone(template);
  for (const c of copy.containers ?? []) c.env = (c.env ?? []).filter((e: Plain) => !names.has(e.name));
  return copy;
}

const ts = (date: Date | string | undefined) => {
  if (date === undefined) return undefined;
  const ms = new Date(date).getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
};
const pack = (type: string, value: Plain) => {
  const t = root.lookupType(type);
  return { type_url: `type.googleapis.com/${type}`, value: t.encode(t.fromObject(value)).finish() };
};

function serviceDefinition(service: string, methods: string[]): grpc.ServiceDefinition {
  return protoServiceDefinition(root, service, methods, toObject);
}

/** Pages by offset: `pageToken` is the index of the first item. */
function page<T>(items: T[], request: Plain, max: number): { items: T[]; nextPageToken: string } {
  const start = Number(request.pageToken || 0);
  const size = Math.min(max, request.pageSize || max);
  const next = start + size < items.length ? String(start + size) : "";
  return { items: items.slice(start, start + size), nextPageToken: next };
}

export class CloudRunFake {
  readonly project: string;
  readonly region: string;
  /** Every request received, in order, as decoded JSON. */
  readonly requests: { method: FakeMethod; request: Plain }[] = [];
  /** Polls of a RunJob operation that answer without metadata before it appears. @default 0 */
  metadataDelayPolls = 0;
  /** The order ListExecutions returns (undocumented on Cloud Run). @default "newest-first" */
  listOrder: ListOrder = "newest-first";
  /** How long a new execution stays out of ListExecutions (GetExecution finds it at once). @default 0 */
  listDelayMs = 0;
  /** Whether override env shows in `Execution.template` (undocumented on Cloud Run). @default true */
  overrideEnvInTemplate = true;
  /** Largest page ListTasks returns, whatever the request asks. @default 1000 */
  maxTasksPage = 1000;
  /** Cloud Run services (the scheduler service): put them here, as `gcloud run services replace` would. */
  readonly services: FakeServices;
  readonly #backing: Launcher;
  readonly #server = new grpc.Server();
  readonly #jobs = new Map<string, Plain>();
  readonly #executions = new Map<string, FakeExecution>();
  readonly #operations = new Map<string, { execution?: string; done?: Plain; polls: number }>();
  readonly #faults = new Map<FakeMethod, Fault[]>();
  #port = 0;

  readonly #random: () => number;

  private constructor(options: CloudRunFakeOptions) {
    this.#backing = options.backing;
    this.#random = seededRandom(options.seed ?? 1);
    this.project = options.project ?? "fake-project";
    this.region = options.region ?? "europe-west1";
    this.services = new FakeServices(this.project, this.region);
  }

  static async start(options: CloudRunFakeOptions): Promise<CloudRunFake> {
    const fake = new CloudRunFake(options);
    await fake.#listen();
    return fake;
  }

  get port(): number {
    return this.#port;
  }

  /** Options for the @google-cloud/run clients: this server, no TLS, no credentials. */
  clientOptions(): ClientOptions {
    return {
      apiEndpoint: "127.0.0.1",
      port: this.#port,
      sslCreds: grpc.credentials.createInsecure(),
      authClient: new googleAuthLibrary.PassThroughClient(),
    };
  }

  get parent(): string {
    return `projects/${this.project}/locations/${this.region}`;
  }

  jobPath(id: string): string {
    return `${this.parent}/jobs/${id}`;
  }

  /** Requests of one method, in order. */
  calls(method: FakeMethod): Plain[] {
    return this.requests.filter((r) => r.method === method).map((r) => r.request);
  }

  /** Executions started, oldest first (full names). */
  executions(): string[] {
    return [...this.#executions.keys()];
  }

  /** Makes the next `times` calls of `method` fail this way. */
  inject(method: FakeMethod, fault: Fault, times = 1): void {
    const queue = this.#faults.get(method) ?? [];
    for (let i = 0; i < times; i++) queue.push(fault);
    this.#faults.set(method, queue);
  }

  /**
   * Creates or replaces a job without going through the API (a job someone deployed), checked
   * as CreateJob checks it.
   */
  putJob(id: string, settings: { taskCount?: number; parallelism?: number; maxRetries?: number; timeoutSeconds?: number; env?: Record<string, string> } = {}): void {
    checkParallelism(settings.parallelism ?? 0, settings.taskCount ?? 1, "job.template");
    this.#storeJob(this.jobPath(id), {
      template: {
        taskCount: settings.taskCount ?? 1,
        parallelism: settings.parallelism ?? 0,
        template: {
          containers: [{ image: "fake.example/shardrun:latest", env: Object.entries(settings.env ?? {}).map(([name, value]) => ({ name, value })) }],
          maxRetries: settings.maxRetries ?? 3,
          timeout: { seconds: settings.timeoutSeconds ?? 600 },
        },
      },
    });
  }

  /** Changes a deployed job as someone would in the console, checked as UpdateJob checks it. */
  editJob(id: string, edit: (job: Plain) => void): void {
    const job = structuredClone(this.#job(this.jobPath(id)));
    edit(job);
    this.#validateJob(job);
    this.#storeJob(this.jobPath(id), job);
  }

  /**
   * Adds `count` finished executions to a job's history, created before anything started
   * through the API, each carrying `env` (as their overrides would have): the executions
   * Cloud Run keeps for a job (the last 1,000 completed).
   */
  addFinishedExecutions(jobId: string, count: number, env: Record<string, string> = {}): void {
    const job = this.#job(this.jobPath(jobId));
    const at = Date.now() - count * 1000;
    const past = new Map<string, FakeExecution>();
    for (let i = 0; i < count; i++) {
      const id = `${jobId}-${(i + 36 ** 4).toString(36).slice(-5)}`;
      const createTime = new Date(at + i * 1000);
      const template: Plain = structuredClone(job.template?.template ?? {});
      const container: Plain = template.containers?.[0] ?? {};
      container.env = [...(container.env ?? []), ...Object.entries(env).map(([name, value]) => ({ name, value }))];
      const status: ExecutionStatus = {
        name: id,
        state: "succeeded",
        taskCount: 1,
        running: 0,
        succeeded: 1,
        failed: 0,
        cancelled: 0,
        tasks: [{ index: 0, state: "succeeded", attempts: 1, lastExitCode: 0 }],
        startedAt: createTime.toISOString(),
        finishedAt: new Date(createTime.getTime() + 500).toISOString(),
      };
      const name = `${this.jobPath(jobId)}/executions/${id}`;
      past.set(name, { name, id, jobId, createTime, past: status, taskCount: 1, parallelism: 1, maxRetries: 0, timeoutSeconds: 600, template, overrideEnv: [], cancelling: false });
    }
    // History comes before everything started since: keep the map in creation order.
    const later = [...this.#executions];
    this.#executions.clear();
    for (const [k, v] of [...past, ...later]) this.#executions.set(k, v);
    job.executionCount = Number(job.executionCount ?? 0) + count;
  }

  /** Cancels what still runs, waits for it to end, and stops the server. */
  async close(): Promise<void> {
    const names = [...this.#executions.values()].filter((ex) => !ex.past);
    for (const ex of names) await this.#backing.cancel(ex.id);
    const deadline = Date.now() + 30_000;
    for (const ex of names) {
      for (;;) {
        const s = await this.#backing.getExecution(ex.id);
        if (!s || isTerminal(s.state) || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await shutdownServer(this.#server);
  }

  async #listen(): Promise<void> {
    const handlers: Record<string, Record<string, (req: Plain) => Promise<Plain>>> = {
      [`${V2}.Jobs`]: {
        GetJob: async (req) => this.#job(req.name),
        CreateJob: (req) => this.#createJob(req),
        UpdateJob: (req) => this.#updateJob(req),
        RunJob: (req) => this.#runJob(req),
      },
      [`${V2}.Executions`]: {
        GetExecution: async (req) => this.#executionResource(this.#execution(req.name)),
        ListExecutions: (req) => this.#listExecutions(req),
        CancelExecution: (req) => this.#cancel(req),
      },
      [`${V2}.Tasks`]: { ListTasks: (req) => this.#listTasks(req) },
      [`${V2}.Services`]: this.services.handlers(),
      "google.longrunning.Operations": { GetOperation: (req) => this.#getOperation(req) },
    };
    for (const [service, methods] of Object.entries(handlers)) {
      const impl: grpc.UntypedServiceImplementation = {};
      for (const [name, fn] of Object.entries(methods)) impl[name] = this.#unary(name as FakeMethod, fn);
      this.#server.addService(serviceDefinition(service, Object.keys(methods)), impl);
    }
    this.#port = await new Promise<number>((resolve, reject) =>
      this.#server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
    );
  }

  #unary(method: FakeMethod, fn: (req: Plain) => Promise<Plain>): grpc.handleUnaryCall<Plain, Plain> {
    return (call, callback) => {
      this.requests.push({ method, request: call.request });
      const fault = this.#faults.get(method)?.shift();
      if (fault?.kind === "unavailable") return callback({ code: grpc.status.UNAVAILABLE, details: "injected: service unavailable" });
      if (fault?.kind === "quota") return callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: "injected: quota exceeded" });
      fn(call.request).then(
        (response) => {
          if (fault?.kind === "lost-response") {
            const code = fault.code === "DEADLINE_EXCEEDED" ? grpc.status.DEADLINE_EXCEEDED : grpc.status.UNAVAILABLE;
            callback({ code, details: "injected: the work was done, the response lost" });
          } else callback(null, response);
        },
        (error: unknown) =>
          callback(error instanceof StatusError ? { code: error.code, details: error.message } : { code: grpc.status.INTERNAL, details: String(error) }),
      );
    };
  }

  #job(name: string): Plain {
    const job = this.#jobs.get(name);
    if (!job) throw new StatusError(grpc.status.NOT_FOUND, `Resource '${name}' was not found`);
    return job;
  }

  /** Stores a job with the output-only fields Cloud Run fills in. */
  #storeJob(name: string, job: Plain): Plain {
    const previous = this.#jobs.get(name);
    const generation = Number(previous?.generation ?? 0) + 1;
    const now = ts(new Date());
    const { uid: _u, generation: _g, createTime: _c, updateTime: _t, etag: _e, terminalCondition: _tc, conditions: _cs, observedGeneration: _o, reconciling: _r, ...spec } = job;
    const stored: Plain = {
      ...spec,
      name,
      uid: previous?.uid ?? randomUUID(),
      generation: String(generation),
      observedGeneration: String(generation),
      createTime: previous?.createTime ?? now,
      updateTime: now,
      creator: "deployer@fake-project.iam.gserviceaccount.com",
      etag: `"${generation}-${randomUUID().slice(0, 8)}"`,
      terminalCondition: { type: "Ready", state: "CONDITION_SUCCEEDED", lastTransitionTime: now },
      executionCount: previous?.executionCount ?? 0,
    };
    this.#jobs.set(name, stored);
    return stored;
  }

  #jobOperation(job: Plain, validateOnly: boolean): Plain {
    const name = `${this.parent}/operations/${randomUUID()}`;
    const done = { name, done: true, metadata: pack(`${V2}.Job`, job), response: pack(`${V2}.Job`, job) };
    if (!validateOnly) this.#operations.set(name, { done, polls: 0 });
    return done;
  }

  async #createJob(req: Plain): Promise<Plain> {
    if (req.parent !== this.parent) throw new StatusError(grpc.status.NOT_FOUND, `Location '${req.parent}' was not found`);
    if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(req.jobId ?? "")) throw new StatusError(grpc.status.INVALID_ARGUMENT, `job_id '${req.jobId}' is not valid`);
    const name = this.jobPath(req.jobId);
    if (this.#jobs.has(name)) throw new StatusError(grpc.status.ALREADY_EXISTS, `Resource '${name}' already exists`);
    this.#validateJob(req.job);
    if (req.validateOnly) return this.#jobOperation({ ...req.job, name }, true);
    return this.#jobOperation(this.#storeJob(name, req.job ?? {}), false);
  }

  async #updateJob(req: Plain): Promise<Plain> {
    const name: string = req.job?.name ?? "";
    const current = this.#jobs.get(name);
    if (!current && !req.allowMissing) throw new StatusError(grpc.status.NOT_FOUND, `Resource '${name}' was not found`);
    // UpdateJob replaces the whole job; an etag makes it conditional, as in Cloud Run.
    if (current && req.job.etag && req.job.etag !== current.etag) throw new StatusError(grpc.status.ABORTED, `etag ${req.job.etag} does not match ${current.etag}`);
    this.#validateJob(req.job);
    if (req.validateOnly) return this.#jobOperation(req.job, true);
    return this.#jobOperation(this.#storeJob(name, { executionCount: current?.executionCount, ...req.job }), false);
  }

  #validateJob(job: Plain | undefined): void {
    checkParallelism(Number(job?.template?.parallelism ?? 0), Number(job?.template?.taskCount || 1), "job.template");
    const containers: Plain[] = job?.template?.template?.containers ?? [];
    if (!containers.length || containers.some((c) => !c.image)) throw new StatusError(grpc.status.INVALID_ARGUMENT, "template.template.containers[].image is required");
    for (const c of containers) {
      for (const e of c.env ?? []) {
        if (/^CLOUD_RUN_/.test(e.name)) throw new StatusError(grpc.status.INVALID_ARGUMENT, `env ${e.name} is reserved`);
      }
    }
  }

  async #runJob(req: Plain): Promise<Plain> {
    const job = this.#job(req.name);
    const jobId = req.name.split("/").pop()!;
    const overrides: Plain = req.overrides ?? {};
    const template: Plain = structuredClone(job.template?.template ?? {});
    const containers: Plain[] = template.containers ?? [];
    const taskCount = overrides.taskCount || job.template?.taskCount || 1;
    if (taskCount < 1 || taskCount > 10_000) throw new StatusError(grpc.status.INVALID_ARGUMENT, `task_count ${taskCount} is out of range`);
    // The job's parallelism is the execution's: an override of the task count below it is refused.
    checkParallelism(Number(job.template?.parallelism ?? 0), taskCount, "overrides");
    const overrideEnv: Plain[] = [];
    for (const o of overrides.containerOverrides ?? []) {
      if (!o.name && containers.length > 1) throw new StatusError(grpc.status.INVALID_ARGUMENT, "container_overrides[].name is required for a job with several containers");
      const target = o.name ? containers.find((c) => c.name === o.name) : containers[0];
      if (!target) throw new StatusError(grpc.status.INVALID_ARGUMENT, `no container named '${o.name}'`);
      const env: Plain[] = (target.env ?? []).filter((e: Plain) => !(o.env ?? []).some((n: Plain) => n.name === e.name));
      target.env = [...env, ...(o.env ?? [])];
      overrideEnv.push(...(o.env ?? []));
    }
    const timeoutSeconds = Number(overrides.timeout?.seconds ?? template.timeout?.seconds ?? 600);
    template.timeout = { seconds: timeoutSeconds };
    // max_retries is in a oneof, so an explicit 0 is kept; Cloud Run's default is 3.
    const maxRetries = "maxRetries" in template ? Number(template.maxRetries) : 3;
    // 0 (unset): "the maximum possible value" for the execution, which here is every task.
    const parallelism = Number(job.template?.parallelism || taskCount);
    const env = Object.fromEntries((containers[0]?.env ?? []).filter((e: Plain) => e.value !== undefined).map((e: Plain) => [e.name, e.value]));
    const id = await this.#backing.launch({
      jobName: jobId,
      runId: env.SHARDRUN_RUN ?? "",
      launch: Number(env.SHARDRUN_LAUNCH ?? 0),
      taskCount,
      parallelism,
      taskTimeoutSeconds: timeoutSeconds,
      maxRetries,
      env: { ...env, CLOUD_RUN_JOB: jobId },
    });
    const ex: FakeExecution = { name: `${req.name}/executions/${id}`, id, jobId, createTime: new Date(), taskCount, parallelism, maxRetries, timeoutSeconds, template, overrideEnv, cancelling: false };
    this.#executions.set(ex.name, ex);
    job.executionCount = (job.executionCount ?? 0) + 1;
    job.latestCreatedExecution = { name: ex.name, createTime: ts(ex.createTime), completionStatus: "EXECUTION_RUNNING" };
    const operation = `${this.parent}/operations/${randomUUID()}`;
    this.#operations.set(operation, { execution: ex.name, polls: 0 });
    return { name: operation, done: false, ...(this.metadataDelayPolls > 0 ? {} : { metadata: pack(`${V2}.Execution`, await this.#executionResource(ex)) }) };
  }

  async #getOperation(req: Plain): Promise<Plain> {
    const op = this.#operations.get(req.name);
    if (!op) throw new StatusError(grpc.status.NOT_FOUND, `Operation '${req.name}' was not found`);
    if (op.done) return op.done;
    const ex = await this.#executionResource(this.#execution(op.execution!));
    if (op.polls++ < this.metadataDelayPolls) return { name: req.name, done: false };
    const done = ex.completionTime !== undefined;
    return { name: req.name, done, metadata: pack(`${V2}.Execution`, ex), ...(done ? { response: pack(`${V2}.Execution`, ex) } : {}) };
  }

  #execution(name: string): FakeExecution {
    const ex = this.#executions.get(name);
    if (!ex) throw new StatusError(grpc.status.NOT_FOUND, `Resource '${name}' was not found`);
    return ex;
  }

  async #listExecutions(req: Plain): Promise<Plain> {
    this.#job(req.parent);
    const visibleBefore = Date.now() - this.listDelayMs;
    const all = [...this.#executions.values()].filter((e) => req.parent === this.jobPath(e.jobId) && e.createTime.getTime() <= visibleBefore);
    if (this.listOrder === "newest-first") all.reverse();
    if (this.listOrder === "random") {
      for (let i = all.length - 1; i > 0; i--) {
        const j = Math.floor(this.#random() * (i + 1));
        [all[i], all[j]] = [all[j]!, all[i]!];
      }
    }
    const { items, nextPageToken } = page(all, req, 100);
    return { executions: await Promise.all(items.map((e) => this.#executionResource(e))), nextPageToken };
  }

  async #cancel(req: Plain): Promise<Plain> {
    const ex = this.#execution(req.name);
    const status = await this.#status(ex);
    if (isTerminal(status.state)) throw new StatusError(grpc.status.FAILED_PRECONDITION, `Execution '${req.name}' has already completed`);
    ex.cancelling = true;
    await this.#backing.cancel(ex.id);
    const operation = `${this.parent}/operations/${randomUUID()}`;
    this.#operations.set(operation, { execution: ex.name, polls: 0 });
    return { name: operation, done: false, metadata: pack(`${V2}.Execution`, await this.#executionResource(ex)) };
  }

  async #listTasks(req: Plain): Promise<Plain> {
    const ex = this.#execution(req.parent);
    const status = await this.#status(ex);
    const { items, nextPageToken } = page(status.tasks, req, this.maxTasksPage);
    return { tasks: items.map((t) => this.#taskResource(ex, status, t)), nextPageToken };
  }

  async #status(ex: FakeExecution): Promise<ExecutionStatus> {
    if (ex.past) return ex.past;
    const status = await this.#backing.getExecution(ex.id);
    if (!status) throw new StatusError(grpc.status.INTERNAL, `backing execution ${ex.id} vanished`);
    return status;
  }

  /** The backing launcher's status as Cloud Run reports it: counts, times and conditions. */
  async #executionResource(ex: FakeExecution): Promise<Plain> {
    const s = await this.#status(ex);
    const count = (state: TaskStatus["state"]) => s.tasks.filter((t) => t.state === state).length;
    const completed = (() => {
      switch (s.state) {
        case "succeeded":
          return { state: "CONDITION_SUCCEEDED" };
        case "failed":
          return { state: "CONDITION_FAILED", executionReason: "NON_ZERO_EXIT_CODE", message: `${count("failed")} tasks failed` };
        case "cancelled":
          return { state: "CONDITION_FAILED", executionReason: "CANCELLED", message: "The execution was cancelled" };
        case "running":
          return { state: "CONDITION_RECONCILING", ...(ex.cancelling ? { executionReason: "CANCELLING" } : {}) };
        default:
          return { state: "CONDITION_PENDING" };
      }
    })();
    return {
      name: ex.name,
      uid: ex.id,
      job: ex.jobId,
      createTime: ts(ex.createTime),
      ...(s.state !== "pending" ? { startTime: ts(s.startedAt) } : {}),
      ...(isTerminal(s.state) ? { completionTime: ts(s.finishedAt ?? new Date()) } : {}),
      parallelism: ex.parallelism,
      taskCount: ex.taskCount,
      template: this.overrideEnvInTemplate ? ex.template : withoutEnv(ex.template, ex.overrideEnv),
      conditions: [
        { type: "ResourcesAvailable", state: "CONDITION_SUCCEEDED" },
        { type: "Started", state: s.state === "pending" ? "CONDITION_PENDING" : "CONDITION_SUCCEEDED" },
        { type: "Completed", ...completed },
      ],
      runningCount: count("running"),
      succeededCount: count("succeeded"),
      failedCount: count("failed"),
      cancelledCount: count("cancelled"),
      retriedCount: s.tasks.reduce((n, t) => n + Math.max(0, t.attempts - 1), 0),
      logUri: `https://console.cloud.google.com/logs/viewer?project=${this.project}`,
    };
  }

  #taskResource(ex: FakeExecution, s: ExecutionStatus, t: TaskStatus): Plain {
    const terminal = t.state === "succeeded" || t.state === "failed" || t.state === "cancelled";
    const completed =
      t.state === "succeeded"
        ? { state: "CONDITION_SUCCEEDED" }
        : t.state === "failed"
          ? { state: "CONDITION_FAILED", executionReason: "NON_ZERO_EXIT_CODE" }
          : t.state === "cancelled"
            ? { state: "CONDITION_FAILED", executionReason: "CANCELLED" }
            : t.state === "retrying"
              ? { state: "CONDITION_PENDING", reason: "IMMEDIATE_RETRY" }
              : { state: t.state === "running" ? "CONDITION_RECONCILING" : "CONDITION_PENDING" };
    return {
      name: `${ex.name}/tasks/${ex.id}-task${t.index}`,
      job: ex.jobId,
      execution: ex.id,
      index: t.index,
      retried: Math.max(0, t.attempts - 1),
      maxRetries: ex.maxRetries,
      timeout: { seconds: ex.timeoutSeconds },
      containers: ex.template.containers,
      ...(t.attempts > 0 ? { startTime: ts(s.startedAt) } : {}),
      ...(terminal && t.attempts > 0 ? { completionTime: ts(s.finishedAt ?? new Date()) } : {}),
      ...(t.lastExitCode !== undefined
        ? { lastAttemptResult: { exitCode: t.lastExitCode, status: { code: t.lastExitCode === 0 ? 0 : grpc.status.UNKNOWN, message: `exit code ${t.lastExitCode}` } } }
        : {}),
      conditions: [{ type: "Completed", ...completed }],
    };
  }
}
