/**
 * Protocol 6 against the Cloud Run fake at its least helpful: executions listed in any order
 * (newest first, oldest first, random), a new execution invisible to ListExecutions for a
 * minute, override env left out of Execution.template, and 600 finished executions of other
 * launches in the job's history. A launch whose starter died after RunJob, or lost RunJob's
 * answer, must still end with exactly one execution doing the work, and every item once.
 *
 * The tasks are the real worker (compiled), started by the fake through a LocalLauncher.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { prepareJob, resolveJob } from "../../src/config/jobs.js";
import { keys } from "../../src/core/keys.js";
import { LaunchRecord } from "../../src/core/model.js";
import { CloudRunLauncher } from "../../src/launcher/cloud-run.js";
import type { LocalLauncher } from "../../src/launcher/local.js";
import { isTerminal, type Launcher } from "../../src/launcher/port.js";
import { advanceRun, driveRun } from "../../src/orchestrator/drive.js";
import { startLaunch } from "../../src/orchestrator/launch.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { readRun } from "../../src/orchestrator/read.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson } from "../../src/store/json.js";
import { CloudRunFake, type ListOrder } from "../fakes/cloud-run-fake.js";
import { compiledLocalLauncher, REPO, WORKER_COMMAND } from "./launcher-contract.js";

const COUNT = 40;
const TASKS = 2;

let compiled: Awaited<ReturnType<typeof compiledLocalLauncher>>;
beforeAll(async () => {
  compiled = await compiledLocalLauncher();
});
afterAll(async () => {
  await compiled?.dispose();
});

describe("adopting a launch on Cloud Run (protocol 6), whatever ListExecutions shows", () => {
  let dir: string;
  let store: FsObjectStore;
  let backing: LocalLauncher;
  let fake: CloudRunFake;
  let launcher: CloudRunLauncher;
  let log: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "shardrun-adopt-"));
    store = new FsObjectStore(join(dir, "store"));
    backing = new compiled.LocalLauncher({ stateDir: join(dir, "executions"), command: WORKER_COMMAND, killGraceSeconds: 2 });
    fake = await CloudRunFake.start({ backing, seed: 7 });
    launcher = new CloudRunLauncher({ project: fake.project, region: fake.region, clientOptions: fake.clientOptions(), retry: { minDelayMs: 10, maxDelayMs: 100 } });
    log = join(dir, "items.log");
  });
  afterEach(async () => {
    await launcher.close();
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A planned run of the sleepy job, its Cloud Run job deployed with 600 finished executions behind it. */
  async function plannedRun(order: ListOrder) {
    const resolved = resolveJob(join(REPO, "test/fixtures/jobs/sleepy.ts"), REPO, REPO);
    const { job, module, version, key, bundle } = await prepareJob(resolved);
    const run = await planRun({
      store,
      job,
      module,
      version,
      bundle: { key, bytes: bundle.bytes },
      args: { count: COUNT, sleepMs: 30, log },
      settings: { leaseTtlMs: 5000, taskTimeoutSeconds: 60, maxRetries: 1, maxLaunches: 3, tasks: TASKS, parallelism: TASKS },
      trigger: "test",
    });
    fake.putJob(`shardrun-${job.name}`, { maxRetries: 1 });
    // Earlier runs' executions, carrying their own launch identities.
    fake.addFinishedExecutions(`shardrun-${job.name}`, 600, { SHARDRUN_RUN: "20250101-000000-sleepy-0000", SHARDRUN_LAUNCH: "0" });
    fake.listOrder = order;
    fake.listDelayMs = 60_000;
    fake.overrideEnvInTemplate = false;
    return { run, job, options: { store, run, n: 0, shards: Array.from({ length: run.plan.shardCount }, (_, n) => n), taskCount: TASKS, parallelism: TASKS, taskTimeoutSeconds: 60, maxRetries: 1 } };
  }

  /** Executions the API started (the 600 of the history left out). */
  const started = () => fake.calls("RunJob").length;

  async function expectEveryItemOnce(runId: string): Promise<void> {
    const seen: string[] = [];
    for await (const line of mergedOutput(store, runId)) seen.push((JSON.parse(line) as { key: string }).key);
    expect(seen.sort()).toEqual(Array.from({ length: COUNT }, (_, n) => `item-${n}`).sort());
    const executed = readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { key: string }).key);
    expect(new Set(executed).size).toBe(COUNT);
  }

  it.each(["newest-first", "oldest-first", "random"] as const)(
    "a second driver adopts the execution of a starter that died after RunJob (executions listed %s, late, without their env)",
    async (order) => {
      const { run, options } = await plannedRun(order);
      let ranJob = false;
      // The starting process dies right after RunJob: it never records anything again.
      const dying: Launcher = { ...launcherPort(launcher), launch: async (r) => (await launcher.launch(r), (ranJob = true), new Promise<string>(() => {})) };
      void startLaunch({ ...options, launcher: dying });
      while (!ranJob) await new Promise((r) => setTimeout(r, 20));

      const status = await driveRun({ store, launcher, runId: run.runId, pollMs: 100 });
      expect(status).toMatchObject({ state: "succeeded", items: { total: COUNT, succeeded: COUNT, failed: 0 } });
      expect(started()).toBe(1);
      // The launch record names the one execution, and ended with it.
      const record = (await getJson(store, keys.launch(run.runId, 0), LaunchRecord))?.value;
      expect(record).toMatchObject({ state: "succeeded", execution: expect.any(String) });
      expect(fake.executions().at(-1)!.split("/").pop()).toBe(record!.execution!.split("/").pop());
      await expectEveryItemOnce(run.runId);
    },
  );

  it("a lost RunJob answer is not answered with a second RunJob: the launch's own tasks name their execution", async () => {
    const { run } = await plannedRun("random");
    fake.inject("RunJob", { kind: "lost-response", code: "DEADLINE_EXCEEDED" });
    const status = await driveRun({ store, launcher, runId: run.runId, pollMs: 100 });
    expect(status).toMatchObject({ state: "succeeded", items: { total: COUNT, succeeded: COUNT } });
    expect(started()).toBe(1);
    expect(fake.executions()).toHaveLength(601);
    await expectEveryItemOnce(run.runId);
  });

  it("gives up a launch no task ever claimed only after the grace, and a late execution of it then does nothing", async () => {
    const { run, job, options } = await plannedRun("newest-first");
    // The starter wrote the record and died before RunJob: nothing will ever claim launch 0.
    const never: Launcher = { ...launcherPort(launcher), launch: () => new Promise<string>(() => {}) };
    void startLaunch({ ...options, launcher: never });
    while (!(await getJson(store, keys.launch(run.runId, 0), LaunchRecord))) await new Promise((r) => setTimeout(r, 20));
    await readRun(store, run.runId);

    // Inside the grace the launch counts as starting: nothing new is launched.
    expect(await advanceRun({ store, launcher, runId: run.runId })).toMatchObject({ kind: "live" });
    expect(started()).toBe(0);
    // Past it, launch 0 is given up (fenced) and launch 1 starts.
    expect(await advanceRun({ store, launcher, runId: run.runId, startingGraceMs: 0 })).toMatchObject({ kind: "launched", launch: 1 });
    expect(started()).toBe(1);
    // Launch 0's execution starts after all: its tasks find the launch given up and do nothing.
    const late = await launcher.launch({ jobName: `shardrun-${job.name}`, runId: run.runId, launch: 0, taskCount: TASKS, parallelism: TASKS, taskTimeoutSeconds: 60, maxRetries: 0, env: { SHARDRUN_STORE: store.url, SHARDRUN_DEADLINE_S: "60" } });
    const status = await driveRun({ store, launcher, runId: run.runId, pollMs: 100 });
    expect(status).toMatchObject({ state: "succeeded", items: { total: COUNT, succeeded: COUNT } });
    const lateId = late.split("/").pop()!;
    let lateStatus = await backing.getExecution(lateId);
    while (lateStatus && !isTerminal(lateStatus.state)) lateStatus = (await new Promise((r) => setTimeout(r, 50)), await backing.getExecution(lateId));
    expect(lateStatus).toMatchObject({ state: "succeeded", succeeded: TASKS });
    for (let i = 0; i < TASKS; i++) {
      const taskLog = join(dir, "executions", lateId, `task-${i}.log`);
      expect(existsSync(taskLog) ? readFileSync(taskLog, "utf8") : "").toMatch(/given up/);
    }
    await expectEveryItemOnce(run.runId);
  });
});

/** The port's methods of a launcher, bound, so that a test can replace one of them. */
function launcherPort(l: CloudRunLauncher): Launcher {
  return { kind: l.kind, launch: (r) => l.launch(r), getExecution: (n) => l.getExecution(n), cancel: (n) => l.cancel(n) };
}
