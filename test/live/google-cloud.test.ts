/**
 * `make test-live`: the assumptions the Google fakes encode, settled against a real, throwaway
 * project. Never part of `make test`. It runs only with SHARDRUN_LIVE_PROJECT,
 * SHARDRUN_LIVE_REGION and SHARDRUN_LIVE_BUCKET set (and Application Default Credentials that
 * may create Cloud Run jobs and services, Cloud Scheduler jobs, and objects in the bucket), and
 * says why it skips otherwise.
 *
 * Every check prints the real answer as one line, `LIVE <check>: <json>`, and compares it with
 * what the fakes assume (a soft expectation: every answer is printed even when one differs).
 * A difference means a fake must change, and the code with it. What it creates is named
 * `shardrun-live-<random>` and deleted at the end.
 *
 * Optional: SHARDRUN_LIVE_JOB_IMAGE (a job image that honours SLEEP_MS; default Google's sample
 * job image), SHARDRUN_LIVE_ECHO_IMAGE (a service that answers with the request's headers;
 * default mendhak/http-https-echo), SHARDRUN_LIVE_ID_TOKEN (an ID token for calling the
 * service when ADC cannot mint one, e.g. from `gcloud auth print-identity-token`).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { ExecutionsClient, JobsClient, ServicesClient, TasksClient } from "@google-cloud/run";
import { CloudSchedulerClient } from "@google-cloud/scheduler";
import { Storage } from "@google-cloud/storage";
import { GoogleAuth } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NEEDS, STORE_PERMISSIONS } from "../../src/core/iam.js";
import { findCredentials, projectIamPolicy, serviceAccountIamPolicy } from "../../src/doctor/google-auth.js";
import { ExecutionResource, executionState, grpcCode, GrpcCode, TaskResource, taskStatus } from "../../src/launcher/cloud-run.js";
import { VERSION_LABEL, versionLabel } from "../../src/launcher/cloud-run-deploy.js";
import { readService } from "../../src/launcher/cloud-run-service.js";
import { GcsObjectStore } from "../../src/store/gcs.js";
import { bucketIamPolicy, bucketPermissions } from "../../src/store/gcs-bucket.js";

const PROJECT = process.env.SHARDRUN_LIVE_PROJECT ?? "";
const REGION = process.env.SHARDRUN_LIVE_REGION ?? "";
const BUCKET = process.env.SHARDRUN_LIVE_BUCKET ?? "";
const JOB_IMAGE = process.env.SHARDRUN_LIVE_JOB_IMAGE || "us-docker.pkg.dev/cloudrun/container/job:latest";
const ECHO_IMAGE = process.env.SHARDRUN_LIVE_ECHO_IMAGE || "docker.io/mendhak/http-https-echo:latest";
const missing = [!PROJECT && "SHARDRUN_LIVE_PROJECT", !REGION && "SHARDRUN_LIVE_REGION", !BUCKET && "SHARDRUN_LIVE_BUCKET"].filter(Boolean);
if (missing.length) {
  console.warn(
    `skipping the live suite: set ${missing.join(", ")} (a throwaway project, a region, and a bucket in it; ` +
      "credentials from `gcloud auth application-default login`). See README.md, \"The live suite\".",
  );
}

const ID = `shardrun-live-${randomBytes(3).toString("hex")}`;
const parent = `projects/${PROJECT}/locations/${REGION}`;
const report = (check: string, answer: unknown) => console.info(`LIVE ${check}: ${JSON.stringify(answer)}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const codeOf = (p: Promise<unknown>) => p.then(() => "OK", (e: unknown) => ({ code: grpcCode(e), message: String((e as Error).message).slice(0, 300) }));

describe.skipIf(missing.length > 0)(`live Google Cloud (project ${PROJECT}, region ${REGION}, bucket ${BUCKET})`, () => {
  let jobs: JobsClient;
  let executions: ExecutionsClient;
  let tasks: TasksClient;
  const created: string[] = [];

  beforeAll(() => {
    jobs = new JobsClient();
    executions = new ExecutionsClient();
    tasks = new TasksClient();
  });
  afterAll(async () => {
    for (const name of created) await jobs.deleteJob({ name }).then(([op]) => op.promise(), (e: unknown) => console.warn(`could not delete ${name}: ${String(e)}`));
    await Promise.all([jobs?.close(), executions?.close(), tasks?.close()]);
  });

  async function createJob(suffix: string, parallelism: number, taskCount: number): Promise<string> {
    const jobId = `${ID}-${suffix}`;
    const [op] = await jobs.createJob({
      parent,
      jobId,
      job: { template: { parallelism, taskCount, template: { containers: [{ image: JOB_IMAGE, env: [{ name: "SLEEP_MS", value: "1000" }] }], maxRetries: 0 } } },
    });
    const [job] = await op.promise();
    created.push(job.name!);
    return job.name!;
  }
  const run = (job: string, overrides: { taskCount?: number; timeoutSeconds?: number; env?: Record<string, string> }) =>
    jobs.runJob({
      name: job,
      overrides: {
        ...(overrides.taskCount ? { taskCount: overrides.taskCount } : {}),
        ...(overrides.timeoutSeconds ? { timeout: { seconds: overrides.timeoutSeconds } } : {}),
        containerOverrides: [{ env: Object.entries(overrides.env ?? {}).map(([name, value]) => ({ name, value })) }],
      },
    });
  const executionName = (op: { metadata?: unknown }) => (op.metadata as { name?: string } | undefined)?.name ?? "";
  async function waitDone(name: string, timeoutMs = 10 * 60_000): Promise<ExecutionResource> {
    for (const until = Date.now() + timeoutMs; ; await sleep(5000)) {
      const ex = ExecutionResource.parse((await executions.getExecution({ name }))[0]);
      if (ex.completionTime || Date.now() > until) return ex;
    }
  }
  async function taskViews(name: string) {
    const [list] = await tasks.listTasks({ parent: name });
    return list.map((t) => ({ raw: { index: t.index, retried: t.retried, conditions: t.conditions, lastAttemptResult: t.lastAttemptResult }, mapped: taskStatus(TaskResource.parse(t)) }));
  }

  it("a 2-task execution with overrides on a parallelism-3 job (the fake refuses it: INVALID_ARGUMENT)", async () => {
    const tooParallel = await codeOf(
      jobs.createJob({ parent, jobId: `${ID}-p10`, job: { template: { parallelism: 10, taskCount: 1, template: { containers: [{ image: JOB_IMAGE }] } } } }).then(async ([op]) => {
        const [job] = await op.promise();
        created.push(job.name!);
      }),
    );
    report("CreateJob parallelism=10 taskCount=1", tooParallel);
    expect.soft(tooParallel).toMatchObject({ code: GrpcCode.INVALID_ARGUMENT });
    const p3 = await createJob("p3", 3, 3);
    const answer = await codeOf(run(p3, { taskCount: 2 }));
    report("RunJob taskCount=2 on a parallelism-3 job", answer);
    expect.soft(answer).toMatchObject({ code: GrpcCode.INVALID_ARGUMENT });
    // What shardrun deploys instead: parallelism unset.
    const p0 = await createJob("p0", 0, 1);
    const [op] = await run(p0, { taskCount: 2 });
    const ex = (await executions.getExecution({ name: executionName(op) }))[0];
    report("RunJob taskCount=2 on a job with parallelism unset", { parallelism: ex.parallelism, taskCount: ex.taskCount });
    expect.soft(ex.parallelism).toBe(2);
    await waitDone(executionName(op));
  });

  it("GetExecution and ListExecutions right after RunJob (the fakes assume neither a list order, nor that it is listed at once, nor override env in its template)", async () => {
    const job = await createJob("list", 0, 1);
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      const ranAt = Date.now();
      const [op] = await run(job, { env: { SHARDRUN_RUN: "20260101-000000-live-0000", SHARDRUN_LAUNCH: String(i) } });
      const name = executionName(op);
      names.push(name);
      const got = await codeOf(executions.getExecution({ name }));
      const [listed] = await executions.listExecutions({ parent: job });
      const seen = listed.map((e) => e.name);
      const template = (await executions.getExecution({ name }))[0].template;
      report(`execution ${i} right after RunJob`, {
        operationNamesIt: Boolean(name),
        getExecution: got === "OK" ? "OK" : got,
        listedAtOnce: seen.includes(name),
        listPosition: seen.indexOf(name),
        overrideEnvInTemplate: (template?.containers ?? []).some((c) => (c.env ?? []).some((e) => e.name === "SHARDRUN_LAUNCH")),
      });
      expect.soft(got).toBe("OK");
      if (i === 0) {
        // How long until a task runs: what the 10-minute grace for an unclaimed launch must cover.
        let startedMs: number | null = null;
        for (let polls = 0; polls < 120 && startedMs === null; polls++, await sleep(2000)) {
          const [list] = await tasks.listTasks({ parent: name });
          if (list.some((t) => t.startTime)) startedMs = Date.now() - ranAt;
        }
        report("from RunJob to the first task running (ms)", startedMs);
      }
    }
    await sleep(10_000);
    const [listed] = await executions.listExecutions({ parent: job });
    report("ListExecutions order, 10 s later (oldest started first)", { started: names, listed: listed.map((e) => e.name) });
    for (const n of names) await waitDone(n);
  });

  it("a task that times out and one that is cancelled, as the API then shows them", async () => {
    const job = await createJob("ends", 0, 1);
    const [timedOut] = await run(job, { timeoutSeconds: 10, env: { SLEEP_MS: "120000" } });
    const [cancelled] = await run(job, { env: { SLEEP_MS: "120000" } });
    await sleep(20_000);
    await executions.cancelExecution({ name: executionName(cancelled) }).then(([op]) => op.promise().catch(() => undefined));
    for (const [what, op] of [["timed out", timedOut], ["cancelled", cancelled]] as const) {
      const ex = await waitDone(executionName(op));
      const views = await taskViews(executionName(op));
      report(`an execution whose task ${what}`, { conditions: ex.conditions, counts: { failed: ex.failedCount, cancelled: ex.cancelledCount, succeeded: ex.succeededCount }, mapped: executionState(ex), tasks: views });
      expect.soft(executionState(ex)).toBe(what === "cancelled" ? "cancelled" : "failed");
      expect.soft(views.map((v) => v.mapped.state)).toEqual([what === "cancelled" ? "cancelled" : "failed"]);
    }
  });

  it("Cloud Storage: a media GET's generation header, and two writes of one object within a second", async () => {
    const store = new GcsObjectStore({ bucket: BUCKET, prefix: ID, retry: { attempts: 1 } });
    const g = await store.put("probe.json", "{}", { ifGenerationMatch: 0 });
    // The store reads the generation from the media GET's own answer, not from a second call.
    const header = await new Promise<unknown>((resolve, reject) => {
      new Storage()
        .bucket(BUCKET)
        .file(`${ID}/probe.json`)
        .createReadStream()
        .on("response", (r: { headers?: Record<string, unknown>; toJSON?: () => { headers?: Record<string, unknown> } }) => resolve((r.toJSON?.().headers ?? r.headers ?? {})["x-goog-generation"]))
        .on("error", reject)
        .resume();
    });
    const got = await store.get("probe.json");
    report("media GET generation (x-goog-generation)", { written: g, header, read: got?.generation ?? null });
    expect.soft(header).toBe(g);
    expect.soft(got?.generation).toBe(g);
    // The throttle's assumptions: a second write within a second is refused (429), whether or
    // not its precondition would hold.
    const outcome = (p: Promise<unknown>) => p.then(() => "applied", (e: unknown) => String((e as Error).message).slice(0, 200));
    const soon = await outcome(store.put("probe.json", "{}", { ifGenerationMatch: g }));
    const race = await Promise.all([outcome(store.put("race.json", "1", { ifGenerationMatch: 0 })), outcome(store.put("race.json", "2", { ifGenerationMatch: 0 }))]);
    report("a matching conditional write right after the first", soon);
    report("two create-only writes of one name at once", race);
    expect.soft(soon).toMatch(/429|rate limit/i);
    await new Storage().bucket(BUCKET).deleteFiles({ prefix: `${ID}/` }).catch(() => undefined);
  });

  it("Cloud Scheduler: a job with time zone UTC and a ':' in its URI, read back", async () => {
    const client = new CloudSchedulerClient();
    const name = `${parent}/jobs/${ID}`;
    try {
      await client.createJob({ parent, job: { name, schedule: "0 2 * * *", timeZone: "UTC", httpTarget: { uri: "https://example.com/v1/schedules/live:fire", httpMethod: "POST" } } });
      const [job] = await client.getJob({ name });
      report("a job created with timeZone UTC and uri …/live:fire", { timeZone: job.timeZone, uri: job.httpTarget?.uri, headers: job.httpTarget?.headers });
      expect.soft(job.timeZone).toBe("Etc/UTC");
    } finally {
      await client.deleteJob({ name }).catch(() => undefined);
      await client.close();
    }
  });

  it("what shardrun doctor reads: ADC, bucket permissions and policy, IAM policies, a job's version label", async () => {
    const credentials = await findCredentials();
    report("ADC as the doctor finds them", credentials);
    expect.soft(credentials.token).toBe(true);
    const held = await bucketPermissions(BUCKET, STORE_PERMISSIONS);
    const missingBucket = await bucketPermissions(`${ID}-no-such-bucket`, STORE_PERMISSIONS).then((v) => v, (e: unknown) => String(e).slice(0, 200));
    report("testIamPermissions on the bucket, and on a bucket that does not exist", { held, missingBucket });
    expect.soft(held).toEqual([...STORE_PERMISSIONS]);
    // The fake (gcs-iam.ts) answers 404 for a missing bucket, which the adapter reads as null.
    expect.soft(missingBucket).toBeNull();
    const bucketPolicy = await bucketIamPolicy(BUCKET).then((p) => ({ bindings: p?.bindings.length }), (e: unknown) => String(e).slice(0, 200));
    report("the bucket's IAM policy (needs storage.buckets.getIamPolicy)", bucketPolicy);
    const project = await projectIamPolicy(PROJECT).then((p) => ({ bindings: p.bindings.length, conditional: p.bindings.filter((b) => b.conditional).length }), (e: unknown) => String(e).slice(0, 200));
    report("projects.getIamPolicy (Resource Manager v1, version 3)", project);
    expect.soft(project).toMatchObject({ bindings: expect.any(Number) });
    const noAccount = await serviceAccountIamPolicy(PROJECT, `${ID}@${PROJECT}.iam.gserviceaccount.com`).then((p) => p, (e: unknown) => String(e).slice(0, 200));
    report("serviceAccounts.getIamPolicy of an account that does not exist", noAccount);
    // The fake (iam-fake.ts) answers 404, which the adapter reads as null.
    expect.soft(noAccount).toBeNull();
    const jobId = `${ID}-label`;
    const label = await codeOf(
      jobs.createJob({ parent, jobId, job: { labels: { [VERSION_LABEL]: versionLabel("0.1.0+3f9a") }, template: { taskCount: 1, template: { containers: [{ image: JOB_IMAGE }] } } } }).then(async ([op]) => {
        const [job] = await op.promise();
        created.push(job.name!);
      }),
    );
    report(`CreateJob with label ${VERSION_LABEL}=${versionLabel("0.1.0+3f9a")}`, label);
    expect.soft(label).toBe("OK");
    // The role table of src/core/iam.ts: each role it accepts holds the permissions of its need.
    const permissionsOf: Record<keyof typeof NEEDS, readonly string[]> = {
      objects: STORE_PERMISSIONS,
      runJobs: ["run.jobs.runWithOverrides", "run.executions.cancel"],
      actAs: ["iam.serviceAccounts.actAs"],
      invoke: ["run.routes.invoke"],
    };
    const auth = await new GoogleAuth({ scopes: ["https://www.googleapis.com/auth/cloud-platform"] }).getClient();
    for (const [need, n] of Object.entries(NEEDS) as [keyof typeof NEEDS, (typeof NEEDS)[keyof typeof NEEDS]][]) {
      for (const role of [n.role, ...n.also]) {
        const res = await auth.request<{ includedPermissions?: string[] }>({ url: `https://iam.googleapis.com/v1/${role}` });
        const lacking = permissionsOf[need].filter((p) => !(res.data.includedPermissions ?? []).includes(p));
        report(`${role} for ${need}: permissions it lacks`, lacking);
        expect.soft(lacking).toEqual([]);
      }
    }
  });

  it("a call to a service through Cloud Run's front end, with the invoker IAM check on and off", async () => {
    const services = new ServicesClient();
    const name = `${parent}/services/${ID}`;
    try {
      const [op] = await services.createService({ parent, serviceId: ID, service: { template: { containers: [{ image: ECHO_IMAGE, ports: [{ containerPort: 8080 }] }] } } });
      const [service] = await op.promise();
      const url = service.uri!;
      // What the doctor compares Cloud Scheduler's audience with: the URLs Cloud Run accepts.
      const read = await readService({ project: PROJECT, region: REGION, name: ID });
      report("the service as the doctor reads it", { uri: read?.uri, urls: read?.urls, customAudiences: read?.customAudiences, invokerIamDisabled: read?.invokerIamDisabled });
      expect.soft(read?.urls).toContain(url);
      const token = await idToken(url);
      if (!token) {
        report("service call", "skipped: no ID token (set SHARDRUN_LIVE_ID_TOKEN, e.g. from `gcloud auth print-identity-token`)");
        return;
      }
      const call = async (authorization?: string) => {
        const res = await fetch(`${url}/v1/runs`, { headers: authorization ? { authorization } : {} });
        const text = await res.text();
        let forwarded: string | undefined;
        try {
          forwarded = (JSON.parse(text) as { headers?: Record<string, string> }).headers?.authorization;
        } catch {
          forwarded = undefined;
        }
        return { status: res.status, forwardedSignature: forwarded?.split(".")[2]?.slice(0, 40) };
      };
      const forged = `${token.split(".").slice(0, 2).join(".")}.SIGNATURE_REMOVED_BY_GOOGLE`;
      // The doctor takes every URL of the service (and its custom audiences) as an audience the front end accepts.
      const otherUrl = read?.urls.find((u) => u !== url);
      const otherToken = otherUrl ? await idToken(otherUrl) : null;
      const on = {
        valid: await call(`Bearer ${token}`),
        none: await call(),
        forged: await call(`Bearer ${forged}`),
        ...(otherToken ? { forItsOtherUrl: await call(`Bearer ${otherToken}`) } : {}),
      };
      report("invoker IAM check on: a valid ID token, none, a stripped one", on);
      expect.soft(on.valid).toMatchObject({ status: 200, forwardedSignature: "SIGNATURE_REMOVED_BY_GOOGLE" });
      // The front end fake refuses no token with 403 and a forged one with 401, forwarding neither.
      expect.soft([on.none.status, on.forged.status]).toEqual([403, 401]);
      if (on.forItsOtherUrl) expect.soft(on.forItsOtherUrl.status).toBe(200);
      const [update] = await services.updateService({ service: { name, invokerIamDisabled: true, template: { containers: [{ image: ECHO_IMAGE, ports: [{ containerPort: 8080 }] }] } } });
      await update.promise();
      const off = { valid: await call(`Bearer ${token}`) };
      report("invoker IAM check off: a valid ID token", off);
      expect.soft(off.valid).toMatchObject({ status: 200, forwardedSignature: token.split(".")[2]!.slice(0, 40) });
    } finally {
      await services.deleteService({ name }).then(([op]) => op.promise(), () => undefined);
      await services.close();
    }
  });
});

/** An ID token for `audience`: from ADC when it can mint one, else SHARDRUN_LIVE_ID_TOKEN or gcloud. */
async function idToken(audience: string): Promise<string | null> {
  try {
    const client = await new GoogleAuth().getIdTokenClient(audience);
    return await client.idTokenProvider.fetchIdToken(audience);
  } catch {
    if (process.env.SHARDRUN_LIVE_ID_TOKEN) return process.env.SHARDRUN_LIVE_ID_TOKEN;
    const r = spawnSync("gcloud", ["auth", "print-identity-token"], { encoding: "utf8" });
    return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
  }
}
