/**
 * The scheduler service end to end: the service in this process on port 0, a folder store in a
 * temp dir, and the compiled local launcher starting real worker processes. Runs are started,
 * listed, cancelled, rerun and fired through the API and driven to their end by
 * `POST /v1/reconcile` alone; then `shardrun serve` itself, as a process. The HTTP contract (bad
 * input of every kind, every auth failure) is in test/unit/scheduler-http.test.ts.
 */
import { existsSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENV } from "../../src/config/env.js";
import type { Launcher } from "../../src/launcher/port.js";
import { tokenAuthenticator } from "../../src/service/auth.js";
import { serviceHarness, type Answer, type Started } from "../support/service-harness.js";
import { compiledLocalLauncher, WORKER_COMMAND } from "../contract/launcher-contract.js";
import { ROOT, cli, sleep, startCli, tempDir } from "./helpers.js";

const TOKEN = "api-e2e-token-0123456789abcdef";
const SLEEPY = `/v1/jobs/${encodeURIComponent("test/fixtures/jobs/sleepy.ts")}/runs`;
const EVERY_MINUTE = "test/fixtures/jobs/every-minute.ts";
const AUDIENCE = "https://shardrun-scheduler-test.a.run.app";
const ENV_NAMES = { token: ENV.apiToken, audience: ENV.oidcAudience, allowed: ENV.allowedServiceAccounts } as const;
const hasSchedules = existsSync(join(ROOT, "src/schedules/fire.ts"));



let compiled: Awaited<ReturnType<typeof compiledLocalLauncher>>;
let storeDir: string;
let launcher: Launcher;
let main: Started;
const harness = serviceHarness({ token: TOKEN, storeDir: () => storeDir, launcher: () => launcher, main: () => main });
const { logs, started, start, api } = harness;
const unchanged = (fn: () => Promise<void>, ignore?: RegExp) => harness.unchanged(fn, ignore);
/** What the tasks of a live launch write while a test looks: their shards' checkpoints, parts and steps. */
const TASK_WRITES = /\/(shards|steps)\//;


const TERMINAL = new Set(["succeeded", "partial", "failed", "cancelled", "budget_exhausted"]);

/** Reconciles until the run ends: the only thing driving it is `POST /v1/reconcile`. */
async function reconcileToEnd(runId: string, timeoutMs = 90_000): Promise<{ status: Answer["body"]; outcomes: string[] }> {
  const outcomes: string[] = [];
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await api("POST", "/v1/reconcile");
    expect(r.status).toBe(200);
    outcomes.push(...(r.body.runs as { runId: string; outcome: string }[]).filter((x) => x.runId === runId).map((x) => x.outcome));
    const st = await api("GET", `/v1/runs/${runId}`);
    // finishedAt: recorded as finished, not only derived so from the checkpoints.
    if (TERMINAL.has(st.body.state) && st.body.finishedAt) return { status: st.body, outcomes };
    if (Date.now() > until) throw new Error(`run ${runId} did not end in ${timeoutMs} ms: ${JSON.stringify(st.body.items)}`);
    await sleep(300);
  }
}

beforeAll(async () => {
  for (const f of ["dist/test/fixtures/jobs/sleepy.js", "dist/src/worker/main.js"]) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run \`npx tsc -p tsconfig.build.json\` first`);
  }
  compiled = await compiledLocalLauncher();
  storeDir = join(tempDir("shardrun-api-"), "store");
  launcher = new compiled.LocalLauncher({ stateDir: join(storeDir, ".executions"), command: WORKER_COMMAND, killGraceSeconds: 1 });
  main = await start(tokenAuthenticator({ token: TOKEN }), { allowJobPaths: true, root: ROOT, scheduleJobs: [EVERY_MINUTE] });
});

afterAll(async () => {
  await harness.stopAll();
  await compiled?.dispose();
});

describe("runs through the API", () => {
  let firstRun: string;

  it("POST /v1/jobs/{job}/runs plans, launches and answers 202 with the status; reconcile alone drives it to success", async () => {
    const r = await api("POST", SLEEPY, { body: { args: { count: 40, sleepMs: 20 }, itemsPerShard: 10, tasks: 2, maxRetries: 1 } });
    expect(r.status).toBe(202);
    const st = r.body;
    expect(st.runId).toMatch(/^\d{8}-\d{6}-sleepy-[0-9a-f]{4}$/);
    expect(r.headers.get("location")).toBe(`/v1/runs/${st.runId}`);
    expect(st.state).toBe("running");
    expect(st.items.total).toBe(40);
    expect(st.shards.total).toBe(4);
    expect(st.launches).toHaveLength(1);
    firstRun = st.runId;
    const { status } = await reconcileToEnd(firstRun);
    expect(status.state).toBe("succeeded");
    expect(status.items).toEqual({ total: 40, succeeded: 40, failed: 0, pending: 0 });
    // The same status object as `status --json`, through GET.
    const again = await api("GET", `/v1/runs/${firstRun}`);
    expect(again.status).toBe(200);
    expect(Object.keys(again.body).sort()).toEqual(["budgets", "createdAt", "executions", "finishedAt", "items", "job", "launches", "runId", "shardList", "shards", "state", "usage"]);
  });

  it("a run whose tasks time out is continued by reconcile until it succeeds, each item once", async () => {
    const r = await api("POST", SLEEPY, { body: { args: { count: 80, sleepMs: 250 }, itemsPerShard: 10, tasks: 2, taskTimeoutSeconds: 2, maxRetries: 0, maxLaunches: 30 } });
    expect(r.status).toBe(202);
    const { status, outcomes } = await reconcileToEnd(r.body.runId, 120_000);
    expect(status.state).toBe("succeeded");
    expect(status.items.succeeded).toBe(80);
    expect(status.launches.length).toBeGreaterThan(1);
    expect(outcomes).toContain("launched");
    expect(status.executions).toBeGreaterThanOrEqual(80);
  });

  it("GET /v1/runs filters by job, state and date, and pages with pageSize and pageToken", async () => {
    const all = await api("GET", "/v1/runs?job=sleepy");
    expect(all.status).toBe(200);
    const ids = (all.body.runs as { runId: string }[]).map((x) => x.runId);
    expect(ids).toContain(firstRun);
    expect([...ids].sort().reverse()).toEqual(ids); // newest first
    expect((await api("GET", "/v1/runs?job=summarize-docs")).body.runs).toEqual([]);
    expect(((await api("GET", "/v1/runs?state=succeeded")).body.runs as { state: string }[]).every((x) => x.state === "succeeded")).toBe(true);
    expect((await api("GET", "/v1/runs?state=cancelled&job=sleepy")).body.runs.map((x: { runId: string }) => x.runId)).not.toContain(firstRun);
    expect((await api("GET", "/v1/runs?since=2000-01-01&until=2000-01-02")).body.runs).toEqual([]);
    const created = (all.body.runs as { runId: string; createdAt: string }[]).find((x) => x.runId === firstRun)!.createdAt;
    const around = await api("GET", `/v1/runs?since=${encodeURIComponent(created)}&until=${encodeURIComponent(new Date(Date.parse(created) + 1).toISOString())}`);
    expect(around.body.runs.map((x: { runId: string }) => x.runId)).toEqual([firstRun]);
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await api("GET", `/v1/runs?job=sleepy&pageSize=1${token ? `&pageToken=${token}` : ""}`);
      expect(page.status).toBe(200);
      expect(page.body.runs.length).toBeLessThanOrEqual(1);
      seen.push(...page.body.runs.map((x: { runId: string }) => x.runId));
      token = page.body.nextPageToken;
    } while (token);
    expect(seen).toEqual(ids);
  });

  it("cancel: stops the live executions, marks the run cancelled; reconcile leaves it; a finished run is a 409", async () => {
    const r = await api("POST", SLEEPY, { body: { args: { count: 400, sleepMs: 200 }, itemsPerShard: 20, tasks: 2 } });
    expect(r.status).toBe(202);
    const runId = r.body.runId as string;
    const execution = r.body.launches[0].execution as string;
    const c = await api("POST", `/v1/runs/${runId}:cancel`);
    expect(c.status).toBe(200);
    expect(c.body.state).toBe("cancelled");
    expect(c.body.reason).toContain("cancelled");
    for (let i = 0; i < 100 && (await launcher.getExecution(execution))?.state !== "cancelled"; i++) await sleep(100);
    expect((await launcher.getExecution(execution))?.state).toBe("cancelled");
    const again = await api("POST", `/v1/runs/${runId}:cancel`, { body: {} });
    expect(again.status).toBe(200);
    const rec = await api("POST", "/v1/reconcile");
    expect(rec.body.runs.map((x: { runId: string }) => x.runId)).not.toContain(runId);
    const after = await api("GET", `/v1/runs/${runId}`);
    expect(after.body.state).toBe("cancelled");
    expect(after.body.launches).toHaveLength(1);
    expect(after.body.items.pending).toBeGreaterThan(0);
    await unchanged(async () => {
      const done = await api("POST", `/v1/runs/${firstRun}:cancel`);
      expect(done.status).toBe(409);
      expect(done.body.error.code).toBe("run_finished");
      const body = await api("POST", `/v1/runs/${runId}:cancel`, { body: { force: true } });
      expect(body.status).toBe(400);
      expect(body.body.error.field).toBe("force");
    });
  });

  it("rerun of a partial run: dead letter lists the failed items; rerun of failed items ends succeeded; a live run is a 409", async () => {
    const marker = join(storeDir, "..", "fail-marker");
    writeFileSync(marker, "");
    const r = await api("POST", SLEEPY, { body: { args: { count: 20, sleepMs: 5, failEvery: 5, failIfExists: marker }, itemsPerShard: 10, tasks: 2 } });
    expect(r.status).toBe(202);
    const runId = r.body.runId as string;
    const { status } = await reconcileToEnd(runId);
    expect(status.state).toBe("partial");
    expect(status.items.failed).toBe(4);

    const dl = await api("GET", `/v1/runs/${runId}/dead-letter`);
    expect(dl.status).toBe(200);
    expect(dl.body.total).toBe(4);
    expect(dl.body.items.map((x: { key: string }) => x.key)).toEqual(["item-0", "item-5", "item-10", "item-15"]);
    expect(dl.body.items[0].error).toContain("item 0 fails");
    const p1 = await api("GET", `/v1/runs/${runId}/dead-letter?pageSize=3`);
    expect(p1.body.items).toHaveLength(3);
    const p2 = await api("GET", `/v1/runs/${runId}/dead-letter?pageSize=3&pageToken=${p1.body.nextPageToken}`);
    expect(p2.body.items.map((x: { key: string }) => x.key)).toEqual(["item-15"]);
    expect(p2.body.nextPageToken).toBeUndefined();
    expect((await api("GET", `/v1/runs/${runId}/dead-letter?pageSize=zero`)).body.error.field).toBe("pageSize");

    await unchanged(async () => {
      const bad = await api("POST", `/v1/runs/${runId}:rerun`, { body: { failedItems: "yes" } });
      expect(bad.status).toBe(400);
      expect(bad.body.error.field).toBe("failedItems");
    });
    unlinkSync(marker);
    const rr = await api("POST", `/v1/runs/${runId}:rerun`, { body: { failedItems: true, budgetTokens: 1_000_000 } });
    expect(rr.status).toBe(202);
    expect(rr.body.state).toBe("running");
    expect(rr.body.budgets.run.tokens).toBe(1_000_000);
    // Launch records change only when someone looks: until a reconcile, the relaunch is live.
    // Its tasks are working meanwhile: the refused rerun must change nothing else.
    await unchanged(async () => {
      const live = await api("POST", `/v1/runs/${runId}:rerun`, { body: {} });
      expect(live.status).toBe(409);
      expect(live.body.error.code).toBe("run_live");
    }, TASK_WRITES);
    const end = await reconcileToEnd(runId);
    expect(end.status.state).toBe("succeeded");
    expect(end.status.items).toEqual({ total: 20, succeeded: 20, failed: 0, pending: 0 });
    expect((await api("GET", `/v1/runs/${runId}/dead-letter`)).body).toMatchObject({ total: 0, items: [] });
  });

  it("a cancelled run can be resumed by a rerun", async () => {
    const r = await api("POST", SLEEPY, { body: { args: { count: 30, sleepMs: 100 }, itemsPerShard: 10, tasks: 1 } });
    const runId = r.body.runId as string;
    expect((await api("POST", `/v1/runs/${runId}:cancel`)).status).toBe(200);
    const rr = await api("POST", `/v1/runs/${runId}:rerun`, { body: { tasks: 3 } });
    expect(rr.status).toBe(202);
    const { status } = await reconcileToEnd(runId);
    expect(status.state).toBe("succeeded");
    expect(status.items.succeeded).toBe(30);
  });

  it("log lines are Cloud Logging JSON with run labels and the request's trace", async () => {
    logs.length = 0;
    const trace = "105445aa7843bc8bf206b12000100000";
    await api("GET", `/v1/runs/${firstRun}`, { headers: { "x-cloud-trace-context": `${trace}/1;o=1` } });
    await api("POST", `/v1/runs/${firstRun}:rerun`, { body: {}, headers: { "x-cloud-trace-context": `${trace}/2;o=1` } });
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(l).toHaveProperty("severity");
      expect(l).toHaveProperty("message");
      expect(l["logging.googleapis.com/trace"]).toBe(`projects/test-project/traces/${trace}`);
    }
    const access = lines.find((l) => l.message === "request");
    expect(access?.httpRequest).toMatchObject({ requestMethod: "GET", status: 200 });
    expect(lines.some((l) => (l["logging.googleapis.com/labels"] as Record<string, string>).run === firstRun)).toBe(true);
  });
});

describe.skipIf(!hasSchedules)("schedule fires", () => {
  it("a fire with Cloud Scheduler's time starts one run; a retried fire returns it and starts nothing", async () => {
    const headers = { "x-cloudscheduler-scheduletime": "2026-01-01T02:00:00Z" };
    const first = await api("POST", "/v1/schedules/every-minute-tick:fire", { headers });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ created: true, job: "every-minute", scheduledTime: "2026-01-01T02:00:00.000Z" });
    expect(first.body.runId).toMatch(/^20260101-020000-every-minute-[0-9a-f]{4}$/);
    await unchanged(async () => {
      const retry = await api("POST", "/v1/schedules/every-minute-tick:fire", { headers });
      expect(retry.status).toBe(200);
      expect(retry.body).toMatchObject({ created: false, runId: first.body.runId });
    });
    const { status } = await reconcileToEnd(first.body.runId);
    expect(status.state).toBe("succeeded");
    expect(status.items.total).toBe(4);
  });

  it("without the header the current minute is the key; a bad header, a bad or unknown name change nothing", async () => {
    const a = await api("POST", "/v1/schedules/every-minute-tick:fire");
    expect([200, 202]).toContain(a.status);
    expect(Date.parse(a.body.scheduledTime) % 60_000).toBe(0);
    await unchanged(async () => {
      const bad = await api("POST", "/v1/schedules/every-minute-tick:fire", { headers: { "x-cloudscheduler-scheduletime": "tomorrow" } });
      expect(bad.status).toBe(400);
      expect(bad.body.error.field).toBe("X-CloudScheduler-ScheduleTime");
      expect((await api("POST", "/v1/schedules/Bad_Name:fire")).status).toBe(400);
      const unknown = await api("POST", "/v1/schedules/no-such-schedule:fire");
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.message).toContain("no-such-schedule");
    });
    await reconcileToEnd(a.body.runId);
  });
});

describe("shardrun serve", () => {
  /** Starts `shardrun serve`, waits for its "serving" line, and returns its URL and log lines. */
  async function serve(args: string[], env: NodeJS.ProcessEnv) {
    const cwd = tempDir("shardrun-serve-");
    const proc = startCli(["serve", ...args], cwd, { [ENV_NAMES.token]: "", [ENV_NAMES.audience]: "", [ENV_NAMES.allowed]: "", ...env });
    const lines: Record<string, unknown>[] = [];
    let buffer = "";
    const url = await new Promise<string>((resolve, reject) => {
      proc.child.stdout!.on("data", (d: Buffer) => {
        buffer += d.toString();
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
          buffer = buffer.slice(nl + 1);
          lines.push(line);
          if (line.message === "serving") resolve(line.url as string);
        }
      });
      void proc.done.then((r) => reject(new Error(`serve exited ${r.code}: ${r.stderr}`)));
    });
    return { ...proc, url, lines };
  }

  it("--local: bearer token auth, its timer alone drives a run to the end, SIGTERM stops it cleanly", async () => {
    const s = await serve(["--local", "--port", "0", "--reconcile-every", "1"], { [ENV_NAMES.token]: TOKEN });
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${s.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${s.url}/v1/runs`)).status).toBe(401);
    const started = await call("POST", "/v1/jobs/summarize-docs/runs", { args: { limit: 20 }, shards: 4, tasks: 2 });
    expect(started.status).toBe(202);
    const runId = ((await started.json()) as { runId: string }).runId;
    let state = "";
    for (let i = 0; i < 600 && state !== "succeeded"; i++) {
      await sleep(200);
      state = ((await (await call("GET", `/v1/runs/${runId}`)).json()) as { state: string }).state;
    }
    expect(state).toBe("succeeded");
    s.child.kill("SIGTERM");
    const r = await s.done;
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const all = [...s.lines, ...r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)];
    expect(all.every((l) => typeof l.severity === "string" && typeof l.message === "string")).toBe(true);
    expect(all.some((l) => l.message === "stopped")).toBe(true);
    expect(JSON.stringify(all)).not.toContain(TOKEN);
  });

  it("--local without a token makes one for the session, logs it once, and requires it", async () => {
    const s = await serve(["--local", "--port", "0", "--reconcile-every", "0"], {});
    const warning = s.lines.find((l) => String(l.message).includes("API token"));
    const token = /token is ([0-9a-f]{48})/.exec(String(warning?.message))?.[1];
    expect(token).toBeDefined();
    expect((await fetch(`${s.url}/v1/runs`)).status).toBe(401);
    expect((await fetch(`${s.url}/v1/runs`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    s.child.kill("SIGTERM");
    expect((await s.done).code).toBe(0);
  });

  it("on Cloud Run refuses to start without auth settings, saying which", async () => {
    const r = await cli(["serve", "--project", "p", "--region", "r", "--port", "0"], tempDir("shardrun-serve-"), { [ENV_NAMES.token]: "", [ENV_NAMES.audience]: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("SHARDRUN_OIDC_AUDIENCE");
    expect(r.stderr).toContain("SHARDRUN_ALLOWED_SERVICE_ACCOUNTS");
    const noList = await cli(["serve", "--port", "0"], tempDir("shardrun-serve-"), { [ENV_NAMES.audience]: AUDIENCE, [ENV_NAMES.allowed]: "" });
    expect(noList.code).toBe(2);
    expect(noList.stderr).toContain("SHARDRUN_ALLOWED_SERVICE_ACCOUNTS");
  });
});
