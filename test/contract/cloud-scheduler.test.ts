/**
 * `syncSchedules` through the real @google-cloud/scheduler client against the gRPC fake built
 * from the package's protos, and `shardrun schedules sync` through the CLI (the compiled one, as
 * users run it) with SHARDRUN_CLOUD_SCHEDULER_ENDPOINT pointing at the fake.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { isShardrunError } from "../../src/core/errors.js";
import { syncSchedules, type SyncSchedulesOptions, type SyncableSchedule } from "../../src/schedules/cloud-scheduler.js";
import { cli } from "../e2e/helpers.js";
import { CloudSchedulerFake } from "../fakes/cloud-scheduler-fake.js";

const SERVICE = "https://shardrun-scheduler-abc123-ew.a.run.app";
const INVOKER = "scheduler-invoker@fake-project.iam.gserviceaccount.com";
const nightly: SyncableSchedule = { name: "docs-nightly", job: "summarize-docs", cron: "0 2 * * *", timeZone: "Etc/UTC", paused: false };
const hourly: SyncableSchedule = { name: "docs-hourly", job: "summarize-docs", cron: "15 * * * *", timeZone: "Europe/Paris", paused: false };
/** A job someone else made in the same location: never touched. */
const foreign = (uri: string) => ({ description: "nightly export", schedule: "0 3 * * *", timeZone: "Etc/UTC", httpTarget: { uri, httpMethod: "POST" } });

describe("syncSchedules against the Cloud Scheduler fake", () => {
  let fake: CloudSchedulerFake;
  beforeEach(async () => {
    fake = await CloudSchedulerFake.start({ maxPageSize: 2 }); // small pages: the listing must follow them
  });
  afterEach(async () => {
    await fake.close();
  });

  const sync = (schedules: SyncableSchedule[], more: Partial<SyncSchedulesOptions> = {}) =>
    syncSchedules({ project: fake.project, region: fake.region, serviceUrl: `${SERVICE}/`, serviceAccountEmail: INVOKER, schedules, clientOptions: fake.clientOptions(), ...more });

  it("creates one job per schedule and the reconcile job, as Cloud Scheduler needs them", async () => {
    const r = await sync([nightly, hourly]);
    expect(r.create.map((c) => c.id).sort()).toEqual(["shardrun-docs-hourly", "shardrun-docs-nightly", "shardrun-reconcile"]);
    expect([r.update, r.pause, r.resume, r.delete]).toEqual([[], [], [], []]);
    const job = fake.job("shardrun-docs-nightly")!;
    expect(job).toMatchObject({
      schedule: "0 2 * * *",
      timeZone: "Etc/UTC",
      state: "ENABLED",
      description: "shardrun: schedule docs-nightly of job summarize-docs",
      httpTarget: {
        // As Cloud Scheduler may give it back: ":" percent-encoded.
        uri: `${SERVICE}/v1/schedules/docs-nightly%3Afire`,
        httpMethod: "POST",
        headers: { "Content-Type": "application/json" },
        oidcToken: { serviceAccountEmail: INVOKER, audience: SERVICE },
      },
      retryConfig: { retryCount: 3, minBackoffDuration: { seconds: "10" }, maxBackoffDuration: { seconds: "300" }, maxDoublings: 3 },
      attemptDeadline: { seconds: "600" },
    });
    expect(Buffer.from(job.httpTarget.body, "base64").toString()).toBe("{}");
    expect(fake.job("shardrun-docs-hourly")).toMatchObject({ schedule: "15 * * * *", timeZone: "Europe/Paris" });
    expect(fake.job("shardrun-reconcile")).toMatchObject({ schedule: "*/5 * * * *", httpTarget: { uri: `${SERVICE}/v1/reconcile`, oidcToken: { audience: SERVICE } }, retryConfig: { retryCount: 0 } });
    expect(fake.calls("CreateJob")).toHaveLength(3);
  });

  it("a second sync is a no-op: it only lists", async () => {
    await sync([nightly, hourly]);
    const mark = fake.requests.length;
    const r = await sync([nightly, hourly]);
    expect([r.create, r.update, r.pause, r.resume, r.delete]).toEqual([[], [], [], [], []]);
    expect(r.unchanged.sort()).toEqual(["shardrun-docs-hourly", "shardrun-docs-nightly", "shardrun-reconcile"]);
    expect(fake.writesSince(mark)).toEqual([]);
  });

  it("a second sync right after the first reports nothing to change, though UTC comes back as Etc/UTC and ':' encoded", async () => {
    const utc = { ...nightly, timeZone: "UTC" };
    await sync([utc, hourly]);
    expect(fake.job("shardrun-docs-nightly")).toMatchObject({ timeZone: "Etc/UTC", httpTarget: { uri: `${SERVICE}/v1/schedules/docs-nightly%3Afire` } });
    const mark = fake.requests.length;
    for (const dryRun of [true, false]) {
      const r = await sync([utc, hourly], { dryRun });
      expect([r.create, r.update, r.pause, r.resume, r.delete]).toEqual([[], [], [], [], []]);
      expect(r.unchanged.sort()).toEqual(["shardrun-docs-hourly", "shardrun-docs-nightly", "shardrun-reconcile"]);
    }
    expect(fake.writesSince(mark)).toEqual([]);
    // A real change still shows: another zone, or another path.
    expect((await sync([{ ...utc, timeZone: "Europe/London" }, hourly], { dryRun: true })).update.map((c) => c.changes)).toEqual([["timeZone"]]);
  });

  it("a changed cron or time zone updates that job only, with an update mask", async () => {
    await sync([nightly, hourly]);
    const mark = fake.requests.length;
    const r = await sync([{ ...nightly, cron: "30 1 * * *", timeZone: "Asia/Tokyo" }, hourly]);
    expect(r.update.map((c) => [c.id, c.changes])).toEqual([["shardrun-docs-nightly", ["schedule", "timeZone"]]]);
    expect(fake.writesSince(mark)).toEqual(["UpdateJob"]);
    const request = fake.calls("UpdateJob")[0]!;
    expect(request.updateMask.paths).toEqual(expect.arrayContaining(["schedule", "time_zone", "http_target"]));
    expect(fake.job("shardrun-docs-nightly")).toMatchObject({ schedule: "30 1 * * *", timeZone: "Asia/Tokyo", state: "ENABLED" });
    expect((await sync([{ ...nightly, cron: "30 1 * * *", timeZone: "Asia/Tokyo" }, hourly])).update).toEqual([]);
  });

  it("a new service URL or invoker updates every job's target", async () => {
    await sync([nightly]);
    const r = await sync([nightly], { serviceUrl: "https://new.example.run.app", audience: "https://aud.example" });
    expect(r.update.map((c) => c.id).sort()).toEqual(["shardrun-docs-nightly", "shardrun-reconcile"]);
    expect(r.update[0]!.changes).toEqual(["uri", "oidcAudience"]);
    expect(fake.job("shardrun-reconcile")!.httpTarget).toMatchObject({ uri: "https://new.example.run.app/v1/reconcile", oidcToken: { audience: "https://aud.example" } });
  });

  it("a removed schedule deletes its job; jobs shardrun did not make are left alone", async () => {
    fake.putJob("nightly-export", foreign("https://example.com/export"));
    fake.putJob("shardrun-handmade", foreign("https://example.com/handmade")); // our prefix, not our mark
    await sync([nightly, hourly]);
    const mark = fake.requests.length;
    const r = await sync([nightly]);
    expect(r.delete.map((c) => c.id)).toEqual(["shardrun-docs-hourly"]);
    expect(fake.writesSince(mark)).toEqual(["DeleteJob"]);
    expect(fake.ids().sort()).toEqual(["nightly-export", "shardrun-docs-nightly", "shardrun-handmade", "shardrun-reconcile"]);
    expect(fake.job("shardrun-handmade")).toMatchObject({ description: "nightly export", schedule: "0 3 * * *" });
  });

  it("without reconcile, the reconcile job goes too", async () => {
    await sync([nightly]);
    const r = await sync([nightly], { reconcile: false });
    expect(r.delete.map((c) => c.id)).toEqual(["shardrun-reconcile"]);
  });

  it("paused pauses the job (PauseJob), unpaused resumes it (ResumeJob)", async () => {
    await sync([nightly]);
    let mark = fake.requests.length;
    const paused = await sync([{ ...nightly, paused: true }]);
    expect(paused.pause.map((c) => c.id)).toEqual(["shardrun-docs-nightly"]);
    expect(fake.writesSince(mark)).toEqual(["PauseJob"]);
    expect(fake.job("shardrun-docs-nightly")!.state).toBe("PAUSED");
    expect((await sync([{ ...nightly, paused: true }])).unchanged).toContain("shardrun-docs-nightly");
    mark = fake.requests.length;
    const resumed = await sync([nightly]);
    expect(resumed.resume.map((c) => c.id)).toEqual(["shardrun-docs-nightly"]);
    expect(fake.writesSince(mark)).toEqual(["ResumeJob"]);
    expect(fake.job("shardrun-docs-nightly")!.state).toBe("ENABLED");
  });

  it("a new paused schedule is created, then paused", async () => {
    const r = await sync([{ ...hourly, paused: true }]);
    expect(r.pause.map((c) => c.id)).toEqual(["shardrun-docs-hourly"]);
    expect(fake.job("shardrun-docs-hourly")!.state).toBe("PAUSED");
    expect(fake.writesSince(0).filter((m) => m !== "CreateJob")).toEqual(["PauseJob"]);
  });

  it("a job left UPDATE_FAILED is updated again", async () => {
    await sync([nightly]);
    const job = fake.job("shardrun-docs-nightly")!;
    fake.putJob("shardrun-docs-nightly", job, "UPDATE_FAILED");
    const r = await sync([nightly]);
    expect(r.update.map((c) => [c.id, c.changes])).toEqual([["shardrun-docs-nightly", ["state UPDATE_FAILED"]]]);
    expect(fake.job("shardrun-docs-nightly")!.state).toBe("ENABLED");
  });

  it("a dry run only reads, and shows create, update and delete", async () => {
    await sync([nightly, hourly]);
    const mark = fake.requests.length;
    const r = await sync([{ ...nightly, cron: "0 4 * * *" }, { name: "docs-weekly", job: "summarize-docs", cron: "0 5 * * SUN", timeZone: "Etc/UTC", paused: true }], { dryRun: true });
    expect(r.dryRun).toBe(true);
    expect(r.create.map((c) => c.id)).toEqual(["shardrun-docs-weekly"]);
    expect(r.update.map((c) => [c.id, c.changes])).toEqual([["shardrun-docs-nightly", ["schedule"]]]);
    expect(r.pause.map((c) => c.id)).toEqual(["shardrun-docs-weekly"]);
    expect(r.delete.map((c) => c.id)).toEqual(["shardrun-docs-hourly"]);
    expect(r.update[0]!.job).toMatchObject({ schedule: "0 4 * * *" });
    expect(fake.requests.slice(mark).map((q) => q.method)).toEqual(["ListJobs", "ListJobs"]); // two pages of two
    expect(fake.job("shardrun-docs-nightly")!.schedule).toBe("0 2 * * *");
  });

  it("refuses to take over a job of a schedule's name that shardrun did not make, before changing anything", async () => {
    fake.putJob("shardrun-docs-nightly", foreign("https://example.com/theirs"));
    const mark = fake.requests.length;
    const e = await sync([nightly, hourly]).catch((err: unknown) => err);
    expect(isShardrunError(e, "INVALID_INPUT")).toBe(true);
    expect((e as Error).message).toContain("shardrun-docs-nightly exists but shardrun did not make it");
    expect(fake.writesSince(mark)).toEqual([]);
  });

  it("an API error says what failed", async () => {
    fake.inject("CreateJob", 7 /* PERMISSION_DENIED */);
    const e = await sync([nightly]).catch((err: unknown) => err);
    expect((e as Error).message).toMatch(/could not create shardrun-\S+: .*roles\/cloudscheduler\.admin/);
  });

  it("bad settings are refused by name before any call", async () => {
    const e = await sync([nightly], { serviceUrl: "shardrun.example" }).catch((err: unknown) => err);
    expect(isShardrunError(e, "INVALID_INPUT")).toBe(true);
    expect((e as Error).message).toContain("serviceUrl: Expected an http(s) URL");
    expect(fake.requests).toEqual([]);
  });
});

describe("shardrun schedules sync through the CLI (the compiled one) against the fake", () => {
  let fake: CloudSchedulerFake;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let where: string[];

  beforeAll(async () => {
    fake = await CloudSchedulerFake.start();
    dir = await mkdtemp(join(tmpdir(), "shardrun-schedules-cli-"));
    env = { SHARDRUN_CLOUD_SCHEDULER_ENDPOINT: `127.0.0.1:${fake.port}`, SHARDRUN_SERVICE_URL: SERVICE, SHARDRUN_OIDC_AUDIENCE: "" };
    where = ["--project", fake.project, "--region", fake.region, "--service-account", INVOKER];
  });
  afterAll(async () => {
    await fake?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("--dry-run shows create, update and delete and changes nothing; sync applies them; a second dry run is clean", async () => {
    // What an earlier sync left: the nightly schedule at another time, and a schedule since removed.
    const earlier = await syncSchedules({
      project: fake.project,
      region: fake.region,
      serviceUrl: SERVICE,
      serviceAccountEmail: INVOKER,
      schedules: [
        { name: "summarize-docs-nightly", job: "summarize-docs", cron: "0 3 * * *", timeZone: "Etc/UTC", paused: false, description: "every document, nightly" },
        { name: "old-schedule", job: "summarize-docs", cron: "0 4 * * *", timeZone: "Etc/UTC", paused: false },
      ],
      reconcile: false,
      clientOptions: fake.clientOptions(),
    });
    expect(earlier.create).toHaveLength(2);
    const mark = fake.requests.length;

    const dry = await cli(["schedules", "sync", "--dry-run", ...where], dir, env);
    expect(dry.stderr).toBe("");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`dry run: compared with Cloud Scheduler in ${fake.parent}; nothing changed`);
    expect(dry.stdout).toContain("shardrun-reconcile: would create");
    expect(dry.stdout).toContain("shardrun-summarize-docs-nightly: would update (schedule)");
    expect(dry.stdout).toContain("shardrun-old-schedule: would delete");
    expect(dry.stdout).toContain(`"uri": "${SERVICE}/v1/reconcile"`);
    expect(fake.writesSince(mark)).toEqual([]);

    const real = await cli(["schedules", "sync", ...where], dir, env);
    expect(real.stderr).toBe("");
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(/shardrun-reconcile: created\nshardrun-summarize-docs-nightly: updated \(schedule\)\nshardrun-old-schedule: deleted\n/);
    expect(fake.job("shardrun-summarize-docs-nightly")!.schedule).toBe("0 2 * * *");
    expect(fake.job("shardrun-old-schedule")).toBeUndefined();

    const again = await cli(["schedules", "sync", "--dry-run", "--json", ...where], dir, env);
    const diff = JSON.parse(again.stdout) as Record<string, unknown[]>;
    expect([diff.create, diff.update, diff.pause, diff.resume, diff.delete]).toEqual([[], [], [], [], []]);
    expect(diff.unchanged).toEqual(expect.arrayContaining(["shardrun-reconcile", "shardrun-summarize-docs-nightly"]));
  });

  it("sync without a service URL is a usage error naming what is missing", async () => {
    const r = await cli(["schedules", "sync", ...where], dir, { ...env, SHARDRUN_SERVICE_URL: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("schedules sync: needs --service-url (or SHARDRUN_SERVICE_URL)");
  });

  it("schedules list shows the job definitions' schedules with their next time", async () => {
    const r = await cli(["schedules", "list", "--json"], dir, env);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { name: string; job: string; cron: string; next: string }[];
    expect(list).toContainEqual(expect.objectContaining({ name: "summarize-docs-nightly", job: "summarize-docs", cron: "0 2 * * *" }));
    expect(list.find((s) => s.name === "summarize-docs-nightly")!.next).toMatch(/T02:00:00\.000Z$/);
  });
});
