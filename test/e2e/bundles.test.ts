/**
 * Jobs run from bundles (issue 12, "Jobs without a stale build"): an edited job runs its new code
 * with no build in between; a comment or formatting edit keeps its version; a rerun runs the
 * bundle its run recorded unless --upgrade; a job that does not build is reported on its own and
 * leaves the other jobs and their schedules working.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { keys } from "../../src/core/keys.js";
import { RunRecord } from "../../src/core/model.js";
import { bundleJob } from "../../src/config/bundle.js";
import { cacheBundle, fetchBundle } from "../../src/config/bundle-cache.js";
import { loadJob, moduleVersion } from "../../src/config/jobs.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { diffJobs, desiredJobs } from "../../src/schedules/cloud-scheduler.js";
import { startLocalCron } from "../../src/schedules/cron.js";
import { fireSchedule } from "../../src/schedules/fire.js";
import { loadScheduleCatalog } from "../../src/schedules/load.js";
import { driveRun } from "../../src/orchestrator/drive.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson } from "../../src/store/json.js";
import type { Logger } from "../../src/core/log.js";
import { WORKER_COMMAND, compiledLocalLauncher } from "../contract/launcher-contract.js";
import { ROOT, cli, parseLines, tempDir } from "./helpers.js";

const GREETER = join(ROOT, "test", "fixtures", "jobs", "greeter.ts");
/** A folder of job folders where `broken` does not compile and `fine` does. */
const UNCOMPILABLE = join(ROOT, "test", "fixtures", "uncompilable");

interface Status {
  runId: string;
  state: string;
  items: { total: number; succeeded: number; failed: number; pending: number };
}

/** The greeter fixture copied to a folder outside the package, importing shardrun as "shardrun". */
function copyGreeter(dir: string): string {
  const folder = join(dir, "greeter");
  mkdirSync(folder, { recursive: true });
  const file = join(folder, "index.ts");
  writeFileSync(file, readFileSync(GREETER, "utf8").replace('"../../../src/index.js"', '"shardrun"'));
  return file;
}

function edit(file: string, from: string | RegExp, to: string): void {
  const before = readFileSync(file, "utf8");
  const after = before.replace(from, to);
  expect(after).not.toBe(before);
  writeFileSync(file, after);
}

async function runRecord(dir: string, runId: string): Promise<RunRecord> {
  return (await getJson(new FsObjectStore(join(dir, ".shardrun")), keys.run(runId), RunRecord))!.value;
}

async function greetings(dir: string, runId: string): Promise<Record<string, string>> {
  const r = await cli(["output", runId], dir);
  return Object.fromEntries(parseLines<{ key: string; output: { greeting: string } }>(r.stdout).map((l) => [l.key, l.output.greeting]));
}

async function deadLetter(dir: string, runId: string): Promise<{ key: string; error: string; attempts: number; reason: string }[]> {
  const obj = await new FsObjectStore(join(dir, ".shardrun")).get(`runs/${runId}/dead-letter.jsonl`);
  return obj ? parseLines(Buffer.from(obj.bytes).toString("utf8")) : [];
}

/** Every JSON log line the run's local tasks wrote. */
function taskLogLines(dir: string): Record<string, unknown>[] {
  const executions = join(dir, ".shardrun", ".executions");
  const lines: Record<string, unknown>[] = [];
  for (const e of readdirSync(executions, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    for (const f of readdirSync(join(executions, e.name))) {
      for (const line of readFileSync(join(executions, e.name, f), "utf8").split("\n")) {
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      }
    }
  }
  return lines;
}

describe("jobs run from bundles", () => {
  it("an edited job runs its new code with no build; a comment or formatting edit keeps its version", async () => {
    const dir = tempDir();
    const job = copyGreeter(dir);

    const first = await cli(["run", job, "--local", "--json"], dir);
    expect(first.stderr).not.toContain("internal error");
    expect(first.code).toBe(3); // linus fails for good
    const v1 = JSON.parse(first.stdout) as Status;
    expect(await greetings(dir, v1.runId)).toEqual({ ada: "hello ada", grace: "hello grace" });
    const rec1 = await runRecord(dir, v1.runId);
    expect(rec1.job.bundle).toMatch(/^bundles\/[0-9a-f]{64}\.mjs$/);
    expect(rec1.job.version).toBe(`0.1.0+${rec1.job.bundle!.slice("bundles/".length, "bundles/".length + 12)}`);
    expect(existsSync(join(dir, ".shardrun", `${rec1.job.bundle!}@`))).toBe(true);

    // Errors thrown by the bundle's own copies of shardrun's classes are still recognised by the worker.
    expect(await deadLetter(dir, v1.runId)).toEqual([expect.objectContaining({ key: "linus", reason: "non_retriable", attempts: 1, error: "linus is not greeted" })]);
    const retried = taskLogLines(dir).filter((l) => typeof l.message === "string" && l.message.includes("retrying"));
    expect(retried).toEqual([expect.objectContaining({ delayMs: 1, error: "grace is busy" })]);

    // Comments and formatting only: the same bundle, the same version.
    edit(job, "export default defineJob({", "// Greets people by name.\nexport default defineJob({\n\n");
    edit(job, /key: \(item\) => item\.name,/, "key: (item) =>\n    item.name , /* the name is unique */");
    const second = await cli(["run", job, "--local", "--json"], dir);
    expect(second.code).toBe(3);
    const rec2 = await runRecord(dir, (JSON.parse(second.stdout) as Status).runId);
    expect(rec2.job.version).toBe(rec1.job.version);
    expect(rec2.job.bundle).toBe(rec1.job.bundle);

    // Code: a new version, and the new code runs at once.
    edit(job, "`hello ${item.name}`", "`goodbye ${item.name}`");
    const third = await cli(["run", job, "--local", "--json"], dir);
    expect(third.code).toBe(3);
    const v3 = JSON.parse(third.stdout) as Status;
    expect(await greetings(dir, v3.runId)).toEqual({ ada: "goodbye ada", grace: "goodbye grace" });
    expect((await runRecord(dir, v3.runId)).job.version).not.toBe(rec1.job.version);
  });

  it("the same source builds the same bytes wherever it sits", async () => {
    const a = await bundleJob(copyGreeter(tempDir()));
    const b = await bundleJob(copyGreeter(tempDir()));
    expect(a.sha256).toBe(b.sha256);
    expect(Buffer.from(a.bytes).toString("utf8")).not.toMatch(/\/tmp\/|shardrun-e2e-/);
  });

  it("a rerun runs the bundle its run recorded; --upgrade builds the job as it is now and records it", async () => {
    const dir = tempDir();
    const job = copyGreeter(dir);
    const r = await cli(["run", job, "--local", "--json"], dir);
    expect(r.code).toBe(3);
    const st = JSON.parse(r.stdout) as Status;
    const recorded = await runRecord(dir, st.runId);

    // Linus is welcome now, but the run's code is the recorded bundle: he fails again, with the old message.
    edit(job, 'if (item.name === "linus") throw new NonRetriableError("linus is not greeted");', "");
    const again = await cli(["rerun", st.runId, "--local", "--failed-items", "--reason", "non_retriable", "--json"], dir);
    expect(again.code).toBe(3);
    expect((JSON.parse(again.stdout) as Status).items).toEqual({ total: 3, succeeded: 2, failed: 1, pending: 0 });
    expect(await deadLetter(dir, st.runId)).toEqual([expect.objectContaining({ key: "linus", error: "linus is not greeted" })]);
    expect((await runRecord(dir, st.runId)).job).toEqual(recorded.job);

    const upgraded = await cli(["rerun", st.runId, "--local", "--failed-items", "--reason", "non_retriable", "--upgrade"], dir);
    expect(upgraded.code).toBe(0);
    const after = await runRecord(dir, st.runId);
    expect(upgraded.stderr).toContain(`upgrading job version ${recorded.job.version} -> ${after.job.version}`);
    expect(after.job.bundle).not.toBe(recorded.job.bundle);
    expect(await greetings(dir, st.runId)).toEqual({ ada: "hello ada", grace: "hello grace", linus: "hello linus" });
  });

  it("a job that does not build is refused on one line naming the file and the error, and nothing is written", async () => {
    const dir = tempDir();
    const r = await cli(["run", join(UNCOMPILABLE, "jobs", "broken"), "--local"], dir);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain('test/fixtures/uncompilable/jobs/broken/index.ts:10:31 does not build: Expected "}" but found ")"');
    expect(existsSync(join(dir, ".shardrun"))).toBe(false);

    const missing = join(dir, "missing");
    mkdirSync(missing);
    writeFileSync(join(missing, "index.ts"), 'export { default } from "./gone.js";\n');
    const m = await cli(["run", missing, "--local"], dir);
    expect(m.code).toBe(2);
    expect(m.stderr).toContain(`${join(missing, "index.ts")}:1:25 does not build: Could not resolve "./gone.js"`);

    // Its neighbour runs.
    const fine = await cli(["run", join(UNCOMPILABLE, "jobs", "fine"), "--local", "--json"], dir);
    expect(fine.code).toBe(0);
    expect((JSON.parse(fine.stdout) as Status).items.succeeded).toBe(4);
  });

  it("a job that does not build loses its own schedules only: the others list, fire and sync", async () => {
    const catalog = await loadScheduleCatalog({ root: UNCOMPILABLE });
    expect(catalog.schedules.map((s) => s.name)).toEqual(["fine-hourly"]);
    expect(catalog.unavailable).toEqual([{ job: "broken", module: "test/fixtures/uncompilable/jobs/broken/index.ts", reason: expect.stringContaining("index.ts:10:31 does not build") }]);

    const dir = tempDir();
    const store = new FsObjectStore(join(dir, "store"));
    const compiled = await compiledLocalLauncher();
    try {
      const launcher = new compiled.LocalLauncher({ stateDir: join(dir, "executions"), command: WORKER_COMMAND, killGraceSeconds: 2 });
      const time = new Date("2026-11-22T03:00:00Z");
      const fired = await fireSchedule({ store, launcher, root: UNCOMPILABLE, scheduleName: "fine-hourly", scheduledTime: time });
      expect(fired.created).toBe(true);
      expect((await driveRun({ store, launcher, runId: fired.runId, pollMs: 100 })).state).toBe("succeeded");
      const run = (await getJson(store, keys.run(fired.runId), RunRecord))!.value;
      expect(run.job.bundle).toBe(catalog.schedules[0]!.bundle!.key);

      await expect(fireSchedule({ store, launcher, root: UNCOMPILABLE, scheduleName: "broken-hourly", scheduledTime: time })).rejects.toThrow(
        /no schedule named "broken-hourly" \(schedules: fine-hourly\); job broken does not load, its schedules are unavailable: .*index\.ts:10:31/,
      );

      const errors: Record<string, unknown>[] = [];
      const logger = { debug() {}, info() {}, warn() {}, error: (message: string, fields?: Record<string, unknown>) => errors.push({ message, ...fields }), child: () => logger } as unknown as Logger;
      const cron = startLocalCron({ store, launcher, logger, root: UNCOMPILABLE });
      expect((await cron.ready).map((s) => s.name)).toEqual(["fine-hourly"]);
      cron.stop();
      expect(errors).toEqual([expect.objectContaining({ job: "broken", error: expect.stringContaining("does not build") })]);
    } finally {
      await compiled.dispose();
    }

    // Sync: the broken job's Cloud Scheduler jobs are kept as they are, not deleted as if its schedules were gone.
    const spec = { project: "p", region: "r", serviceUrl: "https://svc.example", serviceAccountEmail: "sa@p.iam.gserviceaccount.com", reconcile: false, schedules: catalog.schedules };
    const found = [...desiredJobs({ ...spec, schedules: [...catalog.schedules, { name: "broken-hourly", job: "broken", cron: "0 * * * *", timeZone: "Etc/UTC", paused: false }] }).values()].map((d) => d.job);
    const diff = diffJobs("projects/p/locations/r", desiredJobs(spec), found, catalog.unavailable.map((u) => u.job));
    expect(diff.delete).toEqual([]);
    expect(diff.kept).toEqual(["shardrun-broken-hourly"]);
    expect(diffJobs("projects/p/locations/r", desiredJobs(spec), found).delete.map((d) => d.id)).toEqual(["shardrun-broken-hourly"]);
  });
});

describe("runs recorded before bundles", () => {
  it("still run their compiled module; --upgrade builds the job from its source and records the bundle", async () => {
    const dir = tempDir();
    const store = new FsObjectStore(join(dir, ".shardrun"));
    // What run.json held before bundles: the compiled module and its hash, no bundle.
    const module = "dist/test/fixtures/jobs/greeter.js";
    const run = await planRun({
      store,
      job: await loadJob(join(ROOT, module)),
      module,
      version: moduleVersion(join(ROOT, module)),
      args: {},
      settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 600, maxRetries: 1, maxLaunches: 2 },
      trigger: "test",
    });
    expect(run.job.bundle).toBeUndefined();
    const r = await cli(["rerun", run.runId, "--local", "--json"], dir);
    expect(r.code, r.stderr).toBe(3);
    expect(await greetings(dir, run.runId)).toEqual({ ada: "hello ada", grace: "hello grace" });
    // The compiled module's classes are yet another copy for the bundled worker: still recognised.
    expect(await deadLetter(dir, run.runId)).toEqual([expect.objectContaining({ key: "linus", reason: "non_retriable", attempts: 1 })]);

    const upgraded = await cli(["rerun", run.runId, "--local", "--upgrade", "--failed-items"], dir);
    expect(upgraded.code).toBe(3); // the source fails linus too
    const after = await runRecord(dir, run.runId);
    expect(after.job.module).toBe("test/fixtures/jobs/greeter.ts");
    expect(after.job.bundle).toBe(keys.bundle((await bundleJob(GREETER)).sha256));
    expect(upgraded.stderr).toContain(`upgrading job version ${run.job.version} -> ${after.job.version}`);
  });
});

describe("the bundle cache", () => {
  it("fetches a bundle once, checks it against its hash, and never runs a changed copy", async () => {
    const dir = tempDir();
    const cache = join(dir, "cache");
    const store = new FsObjectStore(join(dir, "store"));
    const bundle = await bundleJob(GREETER);
    const prepared = { bundle, key: keys.bundle(bundle.sha256) };
    await store.put(prepared.key, prepared.bundle.bytes, { ifGenerationMatch: 0 });
    const path = await fetchBundle(store, prepared.key, cache);
    expect(path).toBe(join(cache, `${prepared.bundle.sha256}.mjs`));
    expect(readFileSync(path).equals(prepared.bundle.bytes)).toBe(true);

    // A copy changed on disk is replaced from the store, not imported.
    writeFileSync(path, "export default 'planted';");
    await fetchBundle(store, prepared.key, cache);
    expect(readFileSync(path).equals(prepared.bundle.bytes)).toBe(true);

    // A damaged object in the store is refused.
    const other = join(dir, "other-cache");
    const damaged = new FsObjectStore(join(dir, "damaged"));
    await damaged.put(prepared.key, Buffer.concat([Buffer.from(prepared.bundle.bytes), Buffer.from(";")]), { ifGenerationMatch: 0 });
    await expect(fetchBundle(damaged, prepared.key, other)).rejects.toThrow(/does not match its hash/);
    await expect(fetchBundle(new FsObjectStore(join(dir, "empty")), prepared.key, other)).rejects.toThrow(/is not in/);
    await expect(cacheBundle(prepared.bundle.sha256, Buffer.from("x"), other)).rejects.toThrow(/do not match/);

    // A cache folder others can write into is refused.
    const open = join(dir, "open");
    mkdirSync(open);
    chmodSync(open, 0o777);
    await expect(fetchBundle(store, prepared.key, open)).rejects.toThrow(/only this user can write/);
  });
});

describe("building only what changed", () => {
  it("reuses the last build while no file it read has changed, and builds again when one has", async () => {
    const dir = tempDir();
    const cacheDir = join(dir, "cache");
    const job = copyGreeter(dir);
    const helper = join(dirname(job), "helper.ts");
    writeFileSync(helper, 'export const greet = (name: string) => `hello ${name}`;\n');
    edit(job, "`hello ${item.name}`", "greet(item.name)");
    edit(job, 'import { z } from "zod";', 'import { z } from "zod";\nimport { greet } from "./helper.js";');
    // Files written in the second before a build are not vouched for (they may change under it): age them.
    const age = () => {
      const past = new Date(Date.now() - 60_000);
      for (const f of [job, helper]) utimesSync(f, past, past);
    };
    age();
    const first = await bundleJob(job, { cacheDir });
    expect(first.reused).toBe(false);
    const again = await bundleJob(job, { cacheDir });
    expect(again).toMatchObject({ reused: true, sha256: first.sha256, version: first.version });

    // A comment in an imported file: built again (its bytes changed), to the same bundle.
    writeFileSync(helper, "// greets\n" + readFileSync(helper, "utf8"));
    age();
    const commented = await bundleJob(job, { cacheDir });
    expect(commented).toMatchObject({ reused: false, sha256: first.sha256 });
    expect((await bundleJob(job, { cacheDir })).reused).toBe(true);

    // Code in an imported file: built again, to a new bundle that runs the new code.
    writeFileSync(helper, 'export const greet = (name: string) => `hi ${name}`;\n');
    const changed = await bundleJob(job, { cacheDir });
    expect(changed.reused).toBe(false);
    expect(changed.sha256).not.toBe(first.sha256);
    expect(Buffer.from(changed.bytes).toString("utf8")).toContain("`hi ${name}`");
    // Changed within the second before that build: not recorded, so built again next time.
    expect((await bundleJob(job, { cacheDir })).reused).toBe(false);

    // A package.json above the job is part of what the build read.
    age();
    await bundleJob(job, { cacheDir });
    expect((await bundleJob(job, { cacheDir })).reused).toBe(true);
    writeFileSync(join(dirname(job), "package.json"), JSON.stringify({ name: "greeter-job", type: "module" }));
    expect((await bundleJob(job, { cacheDir })).reused).toBe(false);
  });
});
