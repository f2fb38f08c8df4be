/**
 * The whole Google Cloud path, offline, with Cloud Storage's rate limits in force: every request
 * of the CLI, the service and the tasks to the bucket goes through a throttle
 * (test/fakes/gcs-throttle.ts) in front of fake-gcs-server that answers 429 to a second
 * mutation of one object within a second, as Cloud Storage does.
 *
 * - `shardrun deploy` creates the Cloud Run jobs on the gRPC fake;
 * - `shardrun run --store gs://…` plans into the bucket and launches through the real
 *   @google-cloud/run client; the fake starts the tasks as worker processes; one task is
 *   SIGKILLed mid-run; every item comes out once;
 * - `rerun --failed-items` re-plans and runs exactly the items that failed;
 * - a run stops at its token budget, and `rerun --budget-tokens` finishes it;
 * - the scheduler service, behind Cloud Run's front end, fires a schedule (twice: Cloud
 *   Scheduler retries), and reconcile drives the run to its end.
 *
 * After each part, the throttle's counters must show that no object was written twice within a
 * second: no 429 went to a write that would have been applied. 429s to writes that had lost a
 * race anyway (two tasks claiming one shard, a retried schedule fire) are contention that
 * compare-and-swap resolves; they are reported, not refused. The bucket never nears its limit.
 */
import { createSign, generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/core/log.js";
import { CloudRunLauncher } from "../../src/launcher/cloud-run.js";
import { isTerminal } from "../../src/launcher/port.js";
import { oidcAuthenticator } from "../../src/service/auth.js";
import { createService, type Service } from "../../src/service/app.js";
import { GcsObjectStore } from "../../src/store/gcs.js";
import { findFakeGcs, startFakeGcs, type FakeGcs } from "../contract/fault-proxy.js";
import { WORKER_COMMAND, compiledLocalLauncher } from "../contract/launcher-contract.js";
import { CloudRunFake } from "../fakes/cloud-run-fake.js";
import { CloudRunFrontend } from "../fakes/cloud-run-frontend.js";
import { GcsThrottle, type ThrottleReport } from "../fakes/gcs-throttle.js";
import { ROOT, SLEEPY, cli, parseLines, sleep, startCli } from "./helpers.js";

const EVERY_MINUTE = join(ROOT, "test", "fixtures", "jobs", "every-minute.ts");
const STORE = "gs://shardrun-e2e/runs";

const found = findFakeGcs();
if (found.missing) {
  if (process.env.CI) throw new Error(`CI must run the Cloud path: ${found.missing}`);
  console.warn(`skipping the Cloud e2e test: ${found.missing}`);
}

interface Status {
  runId: string;
  state: string;
  items: { total: number; succeeded: number; failed: number; pending: number };
  launches: { execution?: string; url?: string }[];
}

describe.skipIf(!found.bin)("on Google Cloud (fakes, Cloud Storage's rate limits in force): deploy, run, rerun, budgets, schedules", () => {
  let gcs: FakeGcs;
  let throttle: GcsThrottle;
  let fake: CloudRunFake;
  let dir: string;
  let dispose: () => Promise<void>;
  let backing: InstanceType<Awaited<ReturnType<typeof compiledLocalLauncher>>["LocalLauncher"]>;
  let env: NodeJS.ProcessEnv;
  let where: string[];
  /** The counters when the current part began. */
  let before: ThrottleReport;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "shardrun-cloud-e2e-"));
    gcs = await startFakeGcs(found.bin!);
    await gcs.createBucket("shardrun-e2e");
    throttle = await GcsThrottle.start({ target: gcs.url });
    const compiled = await compiledLocalLauncher();
    dispose = compiled.dispose;
    // The fake's "containers" run the worker with this environment, as the image would on Cloud
    // Run (where the store is real Cloud Storage and needs no emulator host).
    backing = new compiled.LocalLauncher({
      stateDir: join(dir, "executions"),
      command: WORKER_COMMAND,
      killGraceSeconds: 2,
      // Their own bundle cache, empty: the job's code can only come from the run's bundle in the bucket.
      env: { STORAGE_EMULATOR_HOST: throttle.url, SHARDRUN_BUNDLE_CACHE: join(dir, "task-bundles") },
    });
    fake = await CloudRunFake.start({ backing });
    env = { SHARDRUN_CLOUD_RUN_ENDPOINT: `127.0.0.1:${fake.port}`, STORAGE_EMULATOR_HOST: throttle.url };
    where = ["--project", fake.project, "--region", fake.region];
    before = throttle.report();
  });

  afterAll(async () => {
    if (throttle) console.info(`Cloud Storage throttle, whole path: ${JSON.stringify(throttle.report())}`);
    await fake?.close();
    await throttle?.close();
    await gcs?.stop();
    await dispose?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** This part's counters: no object written twice within a second, the bucket under its limit. */
  function expectNoRateLimitHit(part: string): void {
    const now = throttle.report();
    const since = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.entries(a).flatMap(([k, v]) => (v > (b[k] ?? 0) ? [[k, v - (b[k] ?? 0)]] : [])));
    const tooSoon = since(now.tooSoon, before.tooSoon);
    const lostRace = since(now.lostRace, before.lostRace);
    const bucket = now.refused.bucket - before.refused.bucket;
    console.info(
      `${part}: class A ${now.classA - before.classA}, class B ${now.classB - before.classB}, free ${now.free - before.free}; ` +
        `429s: written too soon ${JSON.stringify(tooSoon)}, lost races ${JSON.stringify(lostRace)}, bucket ${bucket}`,
    );
    const was = before;
    before = now;
    expect({ part, tooSoon, bucket }).toEqual({ part, tooSoon: {}, bucket: 0 });
    expect(now.peakObjectWritesPerSecond).toBe(1);
    expect(now.refused.object - was.refused.object).toBe(Object.values(lostRace).reduce((n, v) => n + v, 0));
  }

  const output = async (runId: string) => parseLines((await cli(["output", runId, "--store", STORE], dir, env)).stdout).map((l) => l.key);
  const once = (keys: string[], count: number) => {
    expect(keys).toHaveLength(count);
    expect(new Set(keys)).toEqual(new Set(Array.from({ length: count }, (_, n) => `item-${n}`)));
  };

  it("deploys the jobs, runs one to the end with a task killed, and every item comes out once", async () => {
    for (const job of [SLEEPY, EVERY_MINUTE]) {
      const deploy = await cli(["deploy", job, ...where, "--image", "fake.example/shardrun:test", "--json"], dir, env);
      expect(deploy.stderr).toBe("");
      expect(deploy.code).toBe(0);
      expect(JSON.parse(deploy.stdout).results[0]).toMatchObject({ action: "create" });
    }
    const again = await cli(["deploy", SLEEPY, ...where, "--image", "fake.example/shardrun:test", "--json"], dir, env);
    expect(JSON.parse(again.stdout).results[0].action).toBe("unchanged");

    const log = join(dir, "executions.jsonl");
    const count = 150;
    const run = startCli(["run", SLEEPY, ...where, "--store", STORE, "--tasks", "3", "--json", "--arg", `count=${count}`, "--arg", "sleepMs=40", "--arg", `log=${log}`], dir, env);
    let finished = false;
    void run.done.then(() => (finished = true));
    let killed = 0;
    while (!finished && !killed) {
      await sleep(100);
      const name = fake.executions()[0];
      const status = name ? await backing.getExecution(name.split("/").pop()!) : null;
      if (!status || isTerminal(status.state)) continue;
      const executed = existsSync(log) ? readFileSync(log, "utf8").split("\n").length : 0;
      const pid = status.tasks.find((t) => t.state === "running" && t.pid)?.pid;
      if (executed >= 30 && pid) {
        process.kill(pid, "SIGKILL");
        killed++;
      }
    }
    const r = await run.done;
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(0);
    expect(killed).toBe(1);
    const status = JSON.parse(r.stdout) as Status;
    expect(status).toMatchObject({ state: "succeeded", items: { total: count, succeeded: count, failed: 0, pending: 0 } });
    expect(status.launches[0]!.execution).toMatch(new RegExp(`^projects/${fake.project}/locations/${fake.region}/jobs/shardrun-sleepy/executions/`));

    // Another process reads the same run from the bucket: status with the console link, output.
    const st = await cli(["status", status.runId, "--store", STORE, ...where], dir, env);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain("https://console.cloud.google.com/run/jobs/executions/details/");
    once(await output(status.runId), count);
    // The task that was killed came back as attempt 2 of the same execution.
    const execution = await backing.getExecution(fake.executions()[0]!.split("/").pop()!);
    expect(execution!.tasks.map((t) => t.attempts).sort()).toEqual([1, 1, 2]);
    // The tasks ran the bundle the run recorded, fetched from the bucket.
    expect(readdirSync(join(dir, "task-bundles")).filter((f) => f.endsWith(".mjs"))).toEqual([expect.stringMatching(/^[0-9a-f]{64}\.mjs$/)]);
    const runs = JSON.parse((await cli(["runs", "--store", STORE, "--json"], dir, env)).stdout) as { runId: string }[];
    expect(runs.map((x) => x.runId)).toContain(status.runId);
    expectNoRateLimitHit("run with a task killed");
  });

  it("reruns exactly the items that failed (--failed-items), and then every item is there once", async () => {
    const broken = join(dir, "broken");
    writeFileSync(broken, "");
    const count = 60;
    const first = await cli(["run", SLEEPY, ...where, "--store", STORE, "--tasks", "2", "--json", "--arg", `count=${count}`, "--arg", "sleepMs=10", "--arg", "failEvery=7", "--arg", `failIfExists=${broken}`], dir, env);
    expect(first.code).toBe(3);
    const failed = JSON.parse(first.stdout) as Status;
    expect(failed.items).toMatchObject({ total: count, succeeded: count - 9, failed: 9 });
    rmSync(broken);
    const rerun = await cli(["rerun", failed.runId, ...where, "--store", STORE, "--failed-items", "--json"], dir, env);
    expect(rerun.stderr).toBe("");
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ state: "succeeded", items: { total: count, succeeded: count, failed: 0 } });
    once(await output(failed.runId), count);
    expectNoRateLimitHit("rerun --failed-items");
  });

  it("a run given --parallelism below its task count is told that Cloud Run runs every task at once, and its launch is valid", async () => {
    const count = 12;
    const r = await cli(["run", SLEEPY, ...where, "--store", STORE, "--tasks", "3", "--parallelism", "1", "--json", "--arg", `count=${count}`, "--arg", "sleepMs=5"], dir, env);
    expect(r.stderr).toContain("--parallelism 1 is not applied; --tasks 1 runs 1 at once");
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as Status;
    expect(status).toMatchObject({ state: "succeeded", items: { total: count, succeeded: count } });
    // The job's parallelism stays unset, so a 3-task execution is valid whatever --parallelism said.
    expect(fake.calls("RunJob").at(-1)!.overrides.taskCount).toBe(3);
    once(await output(status.runId), count);
    expectNoRateLimitHit("--parallelism on Cloud Run");
  });

  it("stops a run at its token budget, and rerun --budget-tokens finishes it", async () => {
    const count = 80;
    const first = await cli(["run", SLEEPY, ...where, "--store", STORE, "--tasks", "2", "--json", "--budget-tokens", "2000", "--arg", `count=${count}`, "--arg", "sleepMs=10", "--arg", "tokens=100"], dir, env);
    expect(first.code).toBe(4);
    const stopped = JSON.parse(first.stdout) as Status;
    expect(stopped.state).toBe("budget_exhausted");
    expect(stopped.items.pending).toBeGreaterThan(0);
    const rerun = await cli(["rerun", stopped.runId, ...where, "--store", STORE, "--budget-tokens", "100000", "--json"], dir, env);
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ state: "succeeded", items: { total: count, succeeded: count } });
    once(await output(stopped.runId), count);
    expectNoRateLimitHit("budget and rerun --budget-tokens");
  });

  it("fires a schedule through the service behind Cloud Run's front end (a retried fire starts nothing), and reconcile finishes the run", async () => {
    const key = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const certs = { k1: key.publicKey.export({ type: "spki", format: "pem" }).toString() };
    const audience = "https://shardrun-scheduler-abc123-ew.a.run.app";
    const invoker = `shardrun-scheduler@${fake.project}.iam.gserviceaccount.com`;
    const store = GcsObjectStore.fromUrl(STORE, { storage: { apiEndpoint: throttle.url }, env: {} });
    const launcher = new CloudRunLauncher({ project: fake.project, region: fake.region, clientOptions: fake.clientOptions() });
    // As manifests/service.yaml deploys it: Cloud Run's invoker check in front.
    const auth = oidcAuthenticator({ audience, allowedEmails: [invoker], certs, behindInvokerCheck: true });
    const service: Service = createService({ store, launcher, auth, logger: silentLogger, project: fake.project, scheduleJobs: [EVERY_MINUTE], root: ROOT });
    const server: Server = createServer(service.handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const frontend = await CloudRunFrontend.start({ target: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, invokerIamCheck: true, audiences: [audience], invokers: [invoker], certs });
    try {
      const now = Math.floor(Date.now() / 1000);
      const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
      const data = `${enc({ alg: "RS256", kid: "k1", typ: "JWT" })}.${enc({ iss: "https://accounts.google.com", aud: audience, email: invoker, email_verified: true, iat: now, exp: now + 3600 })}`;
      const token = `${data}.${createSign("RSA-SHA256").update(data).sign(key.privateKey).toString("base64url")}`;
      // What Cloud Scheduler sends: its OIDC token and the scheduled time.
      const call = (method: string, path: string) =>
        fetch(`${frontend.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "x-cloudscheduler-scheduletime": "2026-11-22T02:01:00Z" }, ...(method === "POST" ? { body: "{}" } : {}) });
      const fired = await call("POST", "/v1/schedules/every-minute-tick:fire");
      expect(fired.status).toBe(202);
      const { runId } = (await fired.json()) as { runId: string };
      const retried = await call("POST", "/v1/schedules/every-minute-tick:fire");
      expect(retried.status).toBe(200);
      expect(await retried.json()).toMatchObject({ runId, created: false });
      // Cloud Scheduler calls reconcile every 5 minutes; here every 1.5 s.
      let state = "";
      for (let i = 0; i < 40 && state !== "succeeded" && state !== "failed"; i++) {
        await sleep(1500);
        expect((await call("POST", "/v1/reconcile")).status).toBe(200);
        state = ((await (await call("GET", `/v1/runs/${runId}`)).json()) as { state: string }).state;
      }
      expect(state).toBe("succeeded");
      expect(fake.calls("RunJob").filter((r) => String(r.name).endsWith("/shardrun-every-minute"))).toHaveLength(1);
      const keys = parseLines((await cli(["output", runId, "--store", STORE], dir, env)).stdout).map((l) => l.key);
      expect(keys.sort()).toEqual(["n0", "n1", "n2", "n3"]);
      expect(frontend.refused()).toEqual([]);
    } finally {
      await frontend.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await service.drain();
      await launcher.close();
    }
    expectNoRateLimitHit("schedule fired through the service, reconciled to the end");
  });
});
