/**
 * The API's start and rerun under pressure: a request over a limit is refused at once with
 * nothing written; a large plan answers 202 `planning` at once and goes on in the background,
 * visible and cancellable; a plan that fails after its 202 says why; 20 reruns at once give one
 * 202 and 409s; an unreadable run never breaks `GET /v1/runs`, the dashboard's list or reconcile.
 */
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Launcher } from "../../src/launcher/port.js";
import { tokenAuthenticator } from "../../src/service/auth.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { listAll } from "../../src/store/port.js";
import { compiledLocalLauncher, WORKER_COMMAND } from "../contract/launcher-contract.js";
import { serviceHarness, type Answer, type Started } from "../support/service-harness.js";
import { ROOT, sleep, tempDir } from "./helpers.js";

const TOKEN = "api-planning-token-0123456789abcdef";
const jobPath = (f: string) => `/v1/jobs/${encodeURIComponent(`test/fixtures/jobs/${f}`)}/runs`;
const SLEEPY = jobPath("sleepy.ts");
const SLOW = jobPath("slow-source.ts");
const TERMINAL = new Set(["succeeded", "partial", "failed", "cancelled", "budget_exhausted"]);

let compiled: Awaited<ReturnType<typeof compiledLocalLauncher>>;
let storeDir: string;
let launcher: Launcher;
let main: Started;
/** The same store, with a long wait for plans: a loaded machine still finds a limit within it. */
let patient: Started;
const harness = serviceHarness({ token: TOKEN, storeDir: () => storeDir, launcher: () => launcher, main: () => main });
const { api, start } = harness;

async function reconcileToEnd(runId: string, timeoutMs = 90_000): Promise<Answer["body"]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    await api("POST", "/v1/reconcile");
    const st = await api("GET", `/v1/runs/${runId}`);
    if (TERMINAL.has(st.body.state) && st.body.finishedAt) return st.body;
    if (Date.now() > until) throw new Error(`run ${runId} did not end: ${JSON.stringify(st.body)}`);
    await sleep(300);
  }
}

/** Objects of one run in the store, its index entries included (what a reader could find). */
async function objectsOf(runId: string): Promise<string[]> {
  const store = new FsObjectStore(storeDir);
  const out: string[] = [];
  for (const prefix of ["runs/", "index/"]) for await (const key of listAll(store, prefix)) if (key.includes(runId)) out.push(key);
  return out;
}

beforeAll(async () => {
  compiled = await compiledLocalLauncher();
  storeDir = join(tempDir("shardrun-api-plan-"), "store");
  launcher = new compiled.LocalLauncher({ stateDir: join(storeDir, ".executions"), command: WORKER_COMMAND, killGraceSeconds: 1 });
  // A short wait: the slow sources below outlast it however loaded the machine is.
  main = await start(tokenAuthenticator({ token: TOKEN }), { allowJobPaths: true, root: ROOT, limits: { maxItems: 5000, maxShards: 500 }, planAnswerMs: 300 });
  patient = await start(tokenAuthenticator({ token: TOKEN }), { allowJobPaths: true, root: ROOT, limits: { maxItems: 5000, maxShards: 500 }, planAnswerMs: 30_000 });
});

afterAll(async () => {
  await harness.stopAll();
  await compiled?.dispose();
});

describe("limits: a request over one is refused at once, with nothing written", () => {
  it.each([
    [{ args: { count: 100_000_000 } }, "maxItems", /the plan has more than 5000 items, over the limit maxItems=5000/],
    [{ args: { count: 10 }, maxItems: 6000 }, "maxItems", /this service plans at most 5000 items a run \(SHARDRUN_MAX_ITEMS\), got 6000/],
    [{ args: { count: 10 }, maxShards: 501 }, "maxShards", /this service plans at most 500 shards a run/],
    [{ args: { count: 10 }, shards: 600 }, "shards", /at most 500 shards a run \(maxShards\), got 600/],
    [{ args: { count: 10 }, maxItems: 0 }, "maxItems", /expected a whole number from 1 to 1000000000/],
    [{ args: { count: 2000 }, itemsPerShard: 1 }, "maxShards", /needs more than 500 shards, over the limit maxShards=500/],
    [{ args: { count: 100 }, maxItems: 50 }, "maxItems", /over the limit maxItems=50/],
  ])("%j", async (body, field, message) => {
    await harness.unchanged(async () => {
      const r = await api("POST", SLEEPY, { body, on: patient });
      expect(r.status).toBe(400);
      expect(r.body.error.message).toMatch(message);
      expect(r.body.error.field).toBe(field);
    });
  });
});

describe("planning in the background", () => {
  it("a slow plan answers 202 planning at once; it is listed and read while planned, then driven to the end", async () => {
    const r = await api("POST", SLOW, { body: { args: { count: 40, delayMs: 40 }, tasks: 2 } });
    expect(r.status).toBe(202);
    expect(r.body.state).toBe("planning");
    expect(r.body.launches).toEqual([]);
    const runId = r.body.runId as string;
    expect(r.headers.get("location")).toBe(`/v1/runs/${runId}`);
    const seen = await api("GET", `/v1/runs/${runId}`);
    expect(seen).toMatchObject({ status: 200, body: { runId, state: "planning", job: "slow-source" } });
    const listed = (await api("GET", "/v1/runs?state=planning")).body.runs as { runId: string; state: string }[];
    expect(listed.map((x) => x.runId)).toContain(runId);
    const end = await reconcileToEnd(runId);
    expect(end).toMatchObject({ state: "succeeded", items: { total: 40, succeeded: 40 } });
  });

  it("a planning run can be cancelled: its planner stops and removes everything it wrote", async () => {
    const r = await api("POST", SLOW, { body: { args: { count: 400, delayMs: 20 } } });
    expect(r.body.state).toBe("planning");
    const runId = r.body.runId as string;
    expect((await objectsOf(runId)).length).toBeGreaterThan(0); // its index entry, at least
    const c = await api("POST", `/v1/runs/${runId}:cancel`);
    expect(c.status).toBe(200);
    expect(c.body).toMatchObject({ runId, state: "cancelled", reason: "cancelled while it was planned" });
    expect(await objectsOf(runId)).toEqual([]);
    const gone = await api("GET", `/v1/runs/${runId}`);
    expect(gone.status).toBe(404);
    expect(gone.body.error.message).toBe(`no run ${runId}: it was cancelled while it was planned; nothing of it was left in the store`);
    expect(((await api("GET", "/v1/runs")).body.runs as { runId: string }[]).map((x) => x.runId)).not.toContain(runId);
  });

  it("a plan that fails after its 202 (a duplicate key far in) leaves nothing, and GET says why", async () => {
    const r = await api("POST", SLOW, { body: { args: { count: 30, delayMs: 40, duplicateAt: 25 } } });
    expect(r.status).toBe(202);
    expect(r.body.state).toBe("planning");
    const runId = r.body.runId as string;
    let gone: Answer | undefined;
    for (let i = 0; i < 100; i++) {
      gone = await api("GET", `/v1/runs/${runId}`);
      if (gone.status !== 200) break;
      await sleep(100);
    }
    expect(gone!.status).toBe(404);
    expect(gone!.body.error.message).toMatch(new RegExp(`^no run ${runId}: its planning failed: item key \\"id-0\\" appears twice, at items 0 and 25 .*; nothing of it was left in the store$`));
    expect(await objectsOf(runId)).toEqual([]);
  });
});

describe("reruns at once", () => {
  it("20 concurrent reruns of one run: one 202, the others 409 with a message, none a 500", async () => {
    const marker = join(storeDir, "..", "broken");
    writeFileSync(marker, "");
    const r = await api("POST", SLEEPY, { body: { args: { count: 40, sleepMs: 300, failEvery: 4, failIfExists: marker }, itemsPerShard: 10, tasks: 2 } });
    const runId = r.body.runId as string;
    expect((await reconcileToEnd(runId)).state).toBe("partial");
    // The cause is still there: the rerun's items fail again, after a while (its launch is live as the others arrive).
    const answers = await Promise.all(Array.from({ length: 20 }, () => api("POST", `/v1/runs/${runId}:rerun`, { body: { failedItems: true } })));
    const codes = answers.map((a) => a.status).sort();
    expect(codes.filter((c) => c === 202)).toHaveLength(1);
    expect(codes.filter((c) => c === 409)).toHaveLength(19);
    for (const a of answers.filter((x) => x.status === 409)) {
      expect(["rerun_in_progress", "run_live"]).toContain(a.body.error.code);
      expect(a.body.error.message).toContain(runId);
    }
    // One new round, with each failed item once.
    const end = await reconcileToEnd(runId);
    expect(end.items).toEqual({ total: 40, succeeded: 30, failed: 10, pending: 0 });
    expect(end.shardList.filter((s: { round: number }) => s.round > 0).reduce((n: number, s: { items: number }) => n + s.items, 0)).toBe(10);
  });
});

describe("an unreadable run", () => {
  it("is listed as unreadable by GET /v1/runs, the dashboard's list and reconcile, and breaks none of them", async () => {
    const store = new FsObjectStore(storeDir);
    const good = (await api("GET", "/v1/runs?pageSize=1")).body.runs[0].runId as string;
    // Two kinds of damage: a run.json gone bad after it was indexed, and an index entry that does not parse.
    const damaged = "20260102-000000-sleepy-bad1";
    await store.put(`runs/${damaged}/run.json`, "{ truncated");
    await store.put(`index/runs/20260102/${damaged}`, JSON.stringify({ runId: damaged, job: "sleepy", state: "succeeded", createdAt: "2026-01-02T00:00:00.000Z", items: 3, trigger: "cli" }));
    await store.put(`index/live/${damaged}`, JSON.stringify({ runId: damaged }));
    const garbled = "20260103-000000-sleepy-bad2";
    await store.put(`index/runs/20260103/${garbled}`, "\u0000\u0001 not json");

    const list = await api("GET", "/v1/runs?pageSize=500");
    expect(list.status).toBe(200);
    const runs = list.body.runs as { runId: string; state: string; reason?: string; object?: string }[];
    expect(runs.map((x) => x.runId)).toContain(good);
    expect(runs.find((x) => x.runId === garbled)).toMatchObject({ state: "unreadable", object: `index/runs/20260103/${garbled}`, reason: expect.stringContaining("index entry") });
    expect((await api("GET", "/v1/runs?state=unreadable")).body.runs.map((x: { runId: string }) => x.runId)).toEqual([garbled]);

    const page = await api("GET", `/?token=${TOKEN}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain(`data-run="${good}"`);
    const row = (id: string) => (page.body as string).split("<tr ").find((r) => r.startsWith(`data-run="${id}"`)) ?? "";
    for (const id of [damaged, garbled]) expect(row(id)).toContain('class="badge badge-unreadable"');
    expect(row(good)).not.toContain("badge-unreadable");
    expect(page.body).toContain(`runs/${damaged}/run.json`);

    const rec = await api("POST", "/v1/reconcile");
    expect(rec.status).toBe(200);
    expect(rec.body.runs).toContainEqual(expect.objectContaining({ runId: damaged, outcome: "unreadable", object: `runs/${damaged}/run.json` }));

    const one = await api("GET", `/v1/runs/${damaged}`);
    expect(one.status).toBe(500);
    expect(one.body.error).toMatchObject({ code: "run_unreadable", message: expect.stringContaining(`runs/${damaged}/run.json`) });
    expect(existsSync(join(storeDir, "runs"))).toBe(true);
    expect(readdirSync(join(storeDir, "runs")).length).toBeGreaterThan(1);
  });
});
