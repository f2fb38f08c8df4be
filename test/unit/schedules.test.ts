import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { InvalidInputError, isShardrunError } from "../../src/core/errors.js";
import { RUN_ID_PATTERN } from "../../src/core/ids.js";
import { defineJob, type Job, type JobDefinition, type ScheduleDefinition } from "../../src/core/job.js";
import { keys } from "../../src/core/keys.js";
import { RunRecord } from "../../src/core/model.js";
import type { ExecutionStatus, LaunchRequest, Launcher } from "../../src/launcher/port.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { listRuns } from "../../src/orchestrator/runs-index.js";
import { startLocalCron } from "../../src/schedules/cron.js";
import { fireSchedule, fireStamp, FireRecord, type FireScheduleOptions } from "../../src/schedules/fire.js";
import { collectSchedules } from "../../src/schedules/load.js";
import { scheduledRunId, type LoadedSchedule } from "../../src/schedules/schedule.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson, putJson } from "../../src/store/json.js";

const item = z.object({ n: z.number() });
const base = { name: "docs", item, source: () => [{ n: 1 }, { n: 2 }, { n: 3 }], run: (i: { n: number }) => i.n };

/** What defineJob threw for these schedules. */
function scheduleError(schedules: unknown, extra: Partial<JobDefinition<{ n: number }, number, Record<string, unknown>>> = {}): string {
  try {
    defineJob({ ...base, ...extra, schedules: schedules as ScheduleDefinition[] });
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return (e as Error).message;
  }
  return expect.fail("defineJob accepted invalid schedules");
}

describe("schedules in job definitions", () => {
  it("fills the defaults", () => {
    const job = defineJob({ ...base, schedules: [{ name: "nightly", cron: "0 2 * * *" }] });
    expect(job.schedules).toEqual([{ name: "nightly", cron: "0 2 * * *", timeZone: "Etc/UTC", args: {}, paused: false }]);
    expect(defineJob(base).schedules).toEqual([]);
  });

  it("accepts month and weekday names, steps, ranges and lists, and IANA zones", () => {
    const job = defineJob({ ...base, schedules: [{ name: "weekdays", cron: "*/15 8-18 * JAN,JUL MON-FRI", timeZone: "America/New_York" }] });
    expect(job.schedules[0]!.timeZone).toBe("America/New_York");
  });

  it.each([
    [[{ name: "Nightly", cron: "0 2 * * *" }], "schedules.0.name: Expected a lowercase name"],
    [[{ name: "reconcile", cron: "0 2 * * *" }], 'schedules.0.name: "reconcile" is reserved'],
    [[{ name: "n", cron: "61 2 * * *" }], "schedules.0.cron: Invalid value for minute: 61"],
    [[{ name: "n", cron: "0 0 2 * * *" }], "schedules.0.cron: Expected five fields"],
    [[{ name: "n", cron: "0 2 L * *" }], "schedules.0.cron: Field 3"],
    [[{ name: "n", cron: "@daily" }], "schedules.0.cron: Expected five fields"],
    [[{ name: "n", cron: "0 2 * * *", timeZone: "Mars/Olympus_Mons" }], "schedules.0.timeZone: Expected an IANA time zone"],
    [[{ name: "n", cron: "0 2 * * *", timeZone: "+01:00" }], "schedules.0.timeZone: Expected an IANA time zone"],
    [[{ name: "n", cron: "0 2 * * *", every: "day" }], "schedules.0: Unrecognized key"],
    [[{ name: "n", cron: "0 2 * * *" }, { name: "n", cron: "0 3 * * *" }], 'schedules.1.name: Duplicate schedule name "n"'],
    [[{ name: "n", cron: "0 2 * * *", args: { limit: 5 } }], "schedules.0.args.limit: The job takes no arguments"],
  ])("refuses %j, naming the field", (schedules, message) => {
    expect(scheduleError(schedules)).toContain(message);
  });

  it("checks schedule args against the job's args schema", () => {
    const args = z.object({ limit: z.coerce.number().int().positive() });
    const message = scheduleError([{ name: "n", cron: "0 2 * * *", args: { limit: "many" } }], { args } as never);
    expect(message).toMatch(/^invalid job definition "docs": schedules\.0\.args\.limit: /);
    expect(defineJob({ ...base, args, schedules: [{ name: "n", cron: "0 2 * * *", args: { limit: "5" } }] }).schedules[0]!.args).toEqual({ limit: "5" });
  });
});

describe("collecting schedules and their run ids", () => {
  const mod = (name: string, schedules: ScheduleDefinition[]) => ({ job: defineJob({ ...base, name, schedules }) as Job, module: `test/${name}.js`, version: "test" });

  it("refuses a schedule name declared by two jobs, naming both", () => {
    const e = (() => {
      try {
        collectSchedules([mod("a", [{ name: "n", cron: "0 2 * * *" }]), mod("b", [{ name: "n", cron: "0 3 * * *" }])]);
      } catch (err) {
        return err as Error;
      }
      return null;
    })();
    expect(isShardrunError(e, "INVALID_INPUT")).toBe(true);
    expect(e!.message).toContain('schedule name "n" is declared by job "a" and job "b"');
  });

  it("sorts by name and keeps the job", () => {
    const all = collectSchedules([mod("b", [{ name: "zz", cron: "0 2 * * *" }]), mod("a", [{ name: "aa", cron: "0 3 * * *" }])]);
    expect(all.map((s) => [s.name, s.job])).toEqual([["aa", "a"], ["zz", "b"]]);
  });

  it("gives a deterministic, valid run id per (job, schedule, time)", () => {
    const t = new Date("2026-11-22T02:00:00.000Z");
    const id = scheduledRunId("docs", "nightly", t);
    expect(id).toMatch(RUN_ID_PATTERN);
    expect(id.startsWith("20261122-020000-docs-")).toBe(true);
    expect(scheduledRunId("docs", "nightly", t)).toBe(id);
    expect(scheduledRunId("docs", "hourly", t)).not.toBe(id);
    expect(fireStamp(new Date("2026-11-22T02:00:00.000Z"))).toBe("20261122T020000Z");
  });
});

/** A Launcher that records launches and reports every execution running: no processes. */
class RecordingLauncher implements Launcher {
  readonly kind = "local" as const;
  readonly launches: LaunchRequest[] = [];
  failNext = 0;
  async launch(request: LaunchRequest): Promise<string> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("injected: launcher unavailable");
    }
    this.launches.push(request);
    return `fake-${request.runId}-${request.launch}`;
  }
  async getExecution(name: string): Promise<ExecutionStatus | null> {
    return { name, state: "running", taskCount: 1, running: 1, succeeded: 0, failed: 0, cancelled: 0, tasks: [] };
  }
  async cancel(): Promise<void> {}
}

describe("fireSchedule: one run per (schedule, scheduled time)", () => {
  let dir: string;
  let store: FsObjectStore;
  let launcher: RecordingLauncher;
  let failSource: boolean;
  let schedules: LoadedSchedule[];
  const T1 = new Date("2026-11-22T02:00:00.000Z");
  const T2 = new Date("2026-11-23T02:00:00.000Z");

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "shardrun-schedules-"));
    store = new FsObjectStore(dir);
    launcher = new RecordingLauncher();
    failSource = false;
    const job = defineJob({
      ...base,
      args: z.object({ count: z.coerce.number().int().default(3) }),
      source: (args: { count: number }) => {
        if (failSource) throw new Error("the source is down");
        return Array.from({ length: args.count }, (_, n) => ({ n }));
      },
      shard: { itemsPerShard: 2 },
      schedules: [{ name: "nightly", cron: "0 2 * * *", args: { count: "5" } }],
    });
    schedules = collectSchedules([{ job: job as Job, module: "test/docs.js", version: "test" }]);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fire = (scheduledTime: Date, more: Partial<FireScheduleOptions> = {}) => fireSchedule({ store, launcher, scheduleName: "nightly", scheduledTime, schedules, ...more });

  it("starts a run with the schedule's trigger and args, and launches it once", async () => {
    const r = await fire(T1);
    expect(r).toMatchObject({ created: true, job: "docs", scheduledTime: "2026-11-22T02:00:00.000Z", runId: scheduledRunId("docs", "nightly", T1) });
    const run = (await getJson(store, keys.run(r.runId), RunRecord))!.value;
    expect(run).toMatchObject({ trigger: "schedule:nightly", args: { count: 5 }, state: "running" });
    expect(run.plan.totalItems).toBe(5);
    expect(launcher.launches).toHaveLength(1);
    expect(launcher.launches[0]!.runId).toBe(r.runId);
  });

  it("the same time twice: one run, created:false the second time", async () => {
    const first = await fire(T1);
    // A retry carries the same time, perhaps with milliseconds: the key is the whole second.
    const second = await fire(new Date(T1.getTime() + 250));
    expect(second).toMatchObject({ created: false, runId: first.runId });
    expect(await listRuns(store)).toHaveLength(1);
    expect(launcher.launches).toHaveLength(1);
  });

  it("two different times: two runs", async () => {
    const a = await fire(T1);
    const b = await fire(T2);
    expect(a.created && b.created).toBe(true);
    expect(a.runId).not.toBe(b.runId);
    expect((await listRuns(store)).map((r) => r.runId).sort()).toEqual([a.runId, b.runId].sort());
    expect(launcher.launches).toHaveLength(2);
  });

  it("five concurrent fires of one time: exactly one run", async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => fire(T1)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.runId)).size).toBe(1);
    expect(await listRuns(store)).toHaveLength(1);
    expect(launcher.launches).toHaveLength(1);
  });

  it("a fire that died after its record and partway through planning is finished by a retry after the lease", async () => {
    const runId = scheduledRunId("docs", "nightly", T1);
    const diedAt = new Date("2026-11-22T02:00:01.000Z");
    const record: FireRecord = { v: 1, schedule: "nightly", job: "docs", scheduledTime: T1.toISOString(), runId, firedAt: diedAt.toISOString(), heartbeatAt: diedAt.toISOString(), takeovers: 0 };
    await putJson(store, keys.scheduleFire("nightly", fireStamp(T1)), record, { ifGenerationMatch: 0 });
    // The dead planner got one items object out: planRun writes them create-only.
    await store.put(keys.items(runId, 0), "stale\n", { ifGenerationMatch: 0 });

    const early = await fire(T1, { now: () => new Date(diedAt.getTime() + 10_000) });
    expect(early).toMatchObject({ created: false, runId });
    expect(await listRuns(store)).toHaveLength(0); // still within the lease: maybe alive, leave it

    const late = await fire(T1, { now: () => new Date(diedAt.getTime() + 120_000) });
    expect(late).toMatchObject({ created: false, runId });
    const run = (await getJson(store, keys.run(runId), RunRecord))!.value;
    expect(run.plan.totalItems).toBe(5);
    expect(new TextDecoder().decode((await store.get(keys.items(runId, 0)))!.bytes)).toContain('"n":0');
    expect(launcher.launches).toHaveLength(1);
    expect((await getJson(store, keys.scheduleFire("nightly", fireStamp(T1)), FireRecord))!.value.takeovers).toBe(1);
    expect(await fire(T1)).toMatchObject({ created: false, runId });
    expect(launcher.launches).toHaveLength(1);
  });

  it("a first launch that failed leaves the run to reconcile: a retry starts nothing", async () => {
    launcher.failNext = 1;
    const first = await fire(T1);
    expect(first.created).toBe(true);
    expect(first.launchError).toContain("launcher unavailable");
    expect((await getJson(store, keys.run(first.runId), RunRecord))!.value.state).toBe("running");
    expect(await fire(T1)).toMatchObject({ created: false, runId: first.runId });
    expect(launcher.launches).toHaveLength(0);
  });

  it("a run planned but never driven (the fire died in between) is launched by the retry", async () => {
    const runId = scheduledRunId("docs", "nightly", T1);
    const now = new Date().toISOString();
    await putJson(store, keys.scheduleFire("nightly", fireStamp(T1)), { v: 1, schedule: "nightly", job: "docs", scheduledTime: T1.toISOString(), runId, firedAt: now, heartbeatAt: now, takeovers: 0 } satisfies FireRecord, { ifGenerationMatch: 0 });
    const s = schedules[0]!;
    await planRun({ store, job: s.handle, module: s.module, version: s.version, args: s.args, settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 60, maxRetries: 0, maxLaunches: 2 }, trigger: "schedule:nightly", runId });
    expect(await fire(T1)).toMatchObject({ created: false, runId });
    expect((await getJson(store, keys.run(runId), RunRecord))!.value.state).toBe("running");
    expect(launcher.launches.map((l) => l.runId)).toEqual([runId]);
    await fire(T1);
    expect(launcher.launches).toHaveLength(1);
  });

  it("a failed planning releases the lease: the next retry plans at once", async () => {
    failSource = true;
    await expect(fire(T1)).rejects.toThrow(/the source is down/);
    expect(await listRuns(store)).toHaveLength(0);
    const record = (await getJson(store, keys.scheduleFire("nightly", fireStamp(T1)), FireRecord))!.value;
    expect(record.error).toContain("the source is down");
    failSource = false;
    const retry = await fire(T1);
    expect(retry.created).toBe(false);
    expect(await listRuns(store)).toHaveLength(1);
    expect(launcher.launches).toHaveLength(1);
  });

  it("an unknown schedule is NOT_FOUND, and nothing is written", async () => {
    const e = await fire(T1, { scheduleName: "weekly" }).catch((err: unknown) => err);
    expect(isShardrunError(e, "NOT_FOUND")).toBe(true);
    expect((e as Error).message).toContain('no schedule named "weekly" (schedules: nightly)');
    expect((await store.list("")).keys).toEqual([]);
  });
});

describe("startLocalCron: fires at the planned times, in the schedule's time zone", () => {
  const job = defineJob({
    ...base,
    schedules: [
      { name: "minutely", cron: "* * * * *" },
      { name: "kathmandu-nine", cron: "0 9 * * *", timeZone: "Asia/Kathmandu" },
      { name: "held", cron: "* * * * *", paused: true },
    ],
  });
  const schedules = collectSchedules([{ job: job as Job, module: "test/docs.js", version: "test" }]);
  const store = new FsObjectStore(join(tmpdir(), "shardrun-cron-never-written"));
  const launcher = new RecordingLauncher();

  afterEach(() => {
    vi.useRealTimers();
  });

  function start() {
    const fired: { name: string; at: string }[] = [];
    const cron = startLocalCron({
      store,
      launcher,
      schedules,
      fire: async (o) => {
        fired.push({ name: o.scheduleName, at: o.scheduledTime.toISOString() });
        return { runId: "x", created: true, job: "docs", scheduledTime: o.scheduledTime.toISOString() };
      },
    });
    return { cron, fired };
  }

  it("fires each minute with the minute as the scheduled time, never a paused schedule", async () => {
    vi.useFakeTimers({ now: new Date("2026-11-22T03:00:20.500Z") });
    const { cron, fired } = start();
    expect((await cron.ready).map((s) => s.name)).toEqual(["kathmandu-nine", "minutely"]);
    await vi.advanceTimersByTimeAsync(3 * 60_000);
    cron.stop();
    await cron.idle();
    expect(fired).toEqual([
      { name: "minutely", at: "2026-11-22T03:01:00.000Z" },
      { name: "minutely", at: "2026-11-22T03:02:00.000Z" },
      { name: "minutely", at: "2026-11-22T03:03:00.000Z" },
    ]);
  });

  it("reads the cron in the schedule's time zone (09:00 in Kathmandu is 03:15 UTC)", async () => {
    vi.useFakeTimers({ now: new Date("2026-11-22T03:14:30.000Z") });
    const { cron, fired } = start();
    await cron.ready;
    await vi.advanceTimersByTimeAsync(60_000);
    cron.stop();
    expect(fired.filter((f) => f.name === "kathmandu-nine")).toEqual([{ name: "kathmandu-nine", at: "2026-11-22T03:15:00.000Z" }]);
  });

  it("after a long sleep fires only the latest missed time, then goes on", async () => {
    vi.useFakeTimers({ now: new Date("2026-11-22T03:00:50.000Z") });
    const { cron, fired } = start();
    await cron.ready;
    vi.setSystemTime(new Date("2026-11-22T03:20:30.000Z")); // the laptop slept; no timer ran
    await vi.advanceTimersByTimeAsync(40_000); // the pending timer wakes at 03:20:40
    cron.stop();
    expect(fired.filter((f) => f.name === "minutely").map((f) => f.at)).toEqual(["2026-11-22T03:20:00.000Z", "2026-11-22T03:21:00.000Z"]);
  });

  it("stop() ends the firing", async () => {
    vi.useFakeTimers({ now: new Date("2026-11-22T03:00:50.000Z") });
    const { cron, fired } = start();
    await cron.ready;
    cron.stop();
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(fired).toEqual([]);
  });
});
