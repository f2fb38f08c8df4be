import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { JobsClient } from "@google-cloud/run";
import { prepareJob, resolveJob } from "../../src/config/jobs.js";
import { keys } from "../../src/core/keys.js";
import { LaunchRecord, type RunRecord } from "../../src/core/model.js";
import { CloudRunLauncher } from "../../src/launcher/cloud-run.js";
import { deployJob, type DeployJobSpec } from "../../src/launcher/cloud-run-deploy.js";
import type { LocalLauncher } from "../../src/launcher/local.js";
import { isTerminal, type LaunchRequest, type Launcher } from "../../src/launcher/port.js";
import { driveRun } from "../../src/orchestrator/drive.js";
import { startLaunch } from "../../src/orchestrator/launch.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson } from "../../src/store/json.js";
import { checkLaunchClaim } from "../../src/worker/launch-claim.js";
import { CloudRunFake } from "../fakes/cloud-run-fake.js";
import { compiledLocalLauncher, launcherContract, REPO, TASK_COMMAND, WORKER_COMMAND } from "./launcher-contract.js";

let compiled: Awaited<ReturnType<typeof compiledLocalLauncher>>;
beforeAll(async () => {
  compiled = await compiledLocalLauncher();
});
afterAll(async () => {
  await compiled?.dispose();
});

launcherContract("cloud-run (gRPC fake)", async (command) => {
  const stateDir = await mkdtemp(join(tmpdir(), "shardrun-fake-run-"));
  const fake = await CloudRunFake.start({ backing: new compiled.LocalLauncher({ stateDir, command, killGraceSeconds: 1 }) });
  const launcher = new CloudRunLauncher({ project: fake.project, region: fake.region, clientOptions: fake.clientOptions(), retry: { minDelayMs: 20, maxDelayMs: 200 } });
  return {
    launcher,
    // A job whose parallelism is the request's (valid: at most its task count), so that the
    // contract's parallelism checks hold; shardrun itself deploys it unset.
    prepare: async (r) => fake.putJob(r.jobName, { parallelism: r.parallelism, taskCount: r.taskCount, maxRetries: r.maxRetries }),
    unknownExecution: `${fake.jobPath("shardrun-contract")}/executions/shardrun-contract-zzzzz`,
    cleanup: async () => {
      await launcher.close();
      await fake.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
});

describe("CloudRunLauncher on the gRPC fake", () => {
  let stateDir: string;
  let backing: LocalLauncher;
  let fake: CloudRunFake;
  let launcher: CloudRunLauncher;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "shardrun-fake-run-"));
    backing = new compiled.LocalLauncher({ stateDir, command: TASK_COMMAND, killGraceSeconds: 1 });
    fake = await CloudRunFake.start({ backing });
    // As `shardrun deploy` leaves it: parallelism unset, so that any task count may run.
    fake.putJob("shardrun-docs", { maxRetries: 1 });
    launcher = new CloudRunLauncher({ project: fake.project, region: fake.region, clientOptions: fake.clientOptions(), retry: { minDelayMs: 10, maxDelayMs: 100 } });
  });
  afterEach(async () => {
    await launcher.close();
    await fake.close(); // cancels what still runs and waits for it
    await rm(stateDir, { recursive: true, force: true });
  });

  const request = (o: Partial<LaunchRequest> = {}): LaunchRequest => ({
    jobName: "shardrun-docs",
    runId: "20260101-000000-docs-ab12",
    launch: 1,
    taskCount: 3,
    parallelism: 2,
    taskTimeoutSeconds: 90,
    maxRetries: 1,
    env: { SHARDRUN_STORE: "gs://bucket/prefix", SHARDRUN_DEADLINE_S: "90", TEST_OUT: stateDir, TEST_SLEEP_MS: "60000" },
    ...o,
  });
  const executionsStarted = async () => (await readdir(stateDir)).filter((f) => f.endsWith(".spec.json")).length;

  it("sends taskCount, timeout and the SHARDRUN_* env as RunJob overrides, and names the execution in full", async () => {
    const execution = await launcher.launch(request({ env: { SHARDRUN_STORE: "gs://bucket/prefix", SHARDRUN_DEADLINE_S: "90", TEST_OUT: stateDir } }));
    expect(fake.calls("RunJob")).toEqual([
      {
        name: fake.jobPath("shardrun-docs"),
        overrides: {
          taskCount: 3,
          timeout: { seconds: "90" },
          containerOverrides: [
            {
              env: [
                { name: "SHARDRUN_STORE", value: "gs://bucket/prefix" },
                { name: "SHARDRUN_DEADLINE_S", value: "90" },
                { name: "TEST_OUT", value: stateDir },
                { name: "SHARDRUN_RUN", value: "20260101-000000-docs-ab12" },
                { name: "SHARDRUN_LAUNCH", value: "1" },
              ],
            },
          ],
        },
      },
    ]);
    expect(execution).toMatch(new RegExp(`^${fake.jobPath("shardrun-docs")}/executions/shardrun-docs-[a-z0-9]{5}$`));
    let status = await launcher.getExecution(execution);
    while (status && status.state !== "succeeded" && status.state !== "failed") status = await launcher.getExecution(execution);
    const id = execution.split("/").pop()!;
    expect(status).toMatchObject({
      name: execution,
      state: "succeeded",
      url: `https://console.cloud.google.com/run/jobs/executions/details/${fake.region}/${id}/tasks?project=${fake.project}`,
    });
    // Cloud Run's own variables, the job's name among them, reach the task next to the overrides.
    const env = JSON.parse(await readFile(join(stateDir, "task-0-0.json"), "utf8")) as Record<string, string>;
    expect(env).toMatchObject({ CLOUD_RUN_JOB: "shardrun-docs", CLOUD_RUN_EXECUTION: id, SHARDRUN_RUN: "20260101-000000-docs-ab12" });
    // A short name works as well as the full one.
    expect((await launcher.getExecution(id))?.name).toBe(execution);
  });

  it("learns the execution's name from the operation without waiting for the execution to end", async () => {
    fake.metadataDelayPolls = 2;
    const execution = await launcher.launch(request());
    expect(fake.calls("GetOperation").length).toBeGreaterThanOrEqual(2);
    expect(fake.executions()).toEqual([execution]);
    expect((await launcher.getExecution(execution))?.state).toMatch(/pending|running/);
  });

  it("sends RunJob again after RESOURCE_EXHAUSTED (refused by quota, nothing started), and starts exactly one", async () => {
    fake.inject("RunJob", { kind: "quota" });
    const execution = await launcher.launch(request());
    expect(fake.calls("RunJob")).toHaveLength(2);
    expect(fake.executions()).toEqual([execution]);
    expect(await executionsStarted()).toBe(1);
  });

  it.each([
    ["UNAVAILABLE before anything happened", { kind: "unavailable" as const }, 0],
    ["UNAVAILABLE after the execution started", { kind: "lost-response" as const, code: "UNAVAILABLE" as const }, 1],
    ["DEADLINE_EXCEEDED after the execution started", { kind: "lost-response" as const, code: "DEADLINE_EXCEEDED" as const }, 1],
  ])("does not send RunJob again after %s: it cannot tell whether one started (LaunchUncertain)", async (_what, fault, started) => {
    fake.inject("RunJob", fault);
    await expect(launcher.launch(request())).rejects.toMatchObject({ code: "LAUNCH_UNCERTAIN", message: expect.stringContaining("not sent again") });
    expect(fake.calls("RunJob")).toHaveLength(1);
    // No listing either: what ListExecutions shows cannot settle it.
    expect(fake.calls("ListExecutions")).toHaveLength(0);
    expect(await executionsStarted()).toBe(started);
  });

  it("gives up after its RunJob attempts when quota refuses each, without starting anything", async () => {
    fake.inject("RunJob", { kind: "quota" }, 3);
    await expect(launcher.launch(request())).rejects.toThrow(/could not start an execution of .*shardrun-docs after 3 attempts/);
    expect(fake.calls("RunJob")).toHaveLength(3);
    expect(await executionsStarted()).toBe(0);
  });

  it("says how to fix a job deployed with a parallelism above the launch's task count", async () => {
    fake.putJob("shardrun-parallel", { parallelism: 10, taskCount: 10 });
    await expect(launcher.launch(request({ jobName: "shardrun-parallel", taskCount: 3 }))).rejects.toMatchObject({
      code: "INVALID_INPUT",
      message: expect.stringContaining("run `shardrun deploy`, which leaves the job's parallelism unset"),
    });
    expect(fake.calls("RunJob")).toHaveLength(1);
  });

  it("does not retry a RunJob on a job that is not deployed, and says how to fix it", async () => {
    await expect(launcher.launch(request({ jobName: "shardrun-missing" }))).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining("run `shardrun deploy` first"),
    });
    expect(fake.calls("RunJob")).toHaveLength(1);
  });

  it("reads every task of an execution across ListTasks pages (google-gax 6: autoPaginate false gives the next request)", async () => {
    fake.maxTasksPage = 2;
    const execution = await launcher.launch(request({ taskCount: 5 }));
    const status = await launcher.getExecution(execution);
    expect(status?.tasks.map((t) => t.index)).toEqual([0, 1, 2, 3, 4]);
    expect(fake.calls("ListTasks").map((r) => r.pageToken || "")).toEqual(["", "2", "4"]);
  });

  it("retries status reads on UNAVAILABLE", async () => {
    const execution = await launcher.launch(request());
    fake.inject("GetExecution", { kind: "unavailable" }, 2);
    fake.inject("ListTasks", { kind: "unavailable" });
    const status = await launcher.getExecution(execution);
    expect(status?.tasks).toHaveLength(3);
    expect(fake.calls("GetExecution")).toHaveLength(3);
    expect(fake.calls("ListTasks")).toHaveLength(2);
  });

  it("cancels through CancelExecution, harmlessly twice", async () => {
    const execution = await launcher.launch(request({ taskCount: 1 }));
    await launcher.cancel(execution);
    let status = await launcher.getExecution(execution);
    for (let i = 0; i < 100 && status?.state !== "cancelled"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await launcher.getExecution(execution);
    }
    expect(status?.state).toBe("cancelled");
    await launcher.cancel(execution);
    expect(fake.calls("CancelExecution").map((r) => r.name)).toEqual([execution, execution]);
  });

  it("lets a retried startLaunch take the execution that claimed the launch after its starter died", async () => {
    const store = new FsObjectStore(join(stateDir, "store"));
    const run = { runId: "20260101-000000-docs-ab12", job: { name: "docs" }, settings: { leaseTtlMs: 30_000 } } as RunRecord;
    const options = { store, run, n: 0, shards: [0, 1], taskCount: 2, parallelism: 2, taskTimeoutSeconds: 90, maxRetries: 1 };
    // Dies right after RunJob: it never records or claims anything.
    let ran = false;
    const dying: Launcher = { ...launcherPort(launcher), launch: async (r) => (await launcher.launch(r), (ran = true), new Promise<string>(() => {})) };
    void startLaunch({ ...options, launcher: dying });
    while (!ran) await new Promise((r) => setTimeout(r, 20));
    expect((await getJson(store, keys.launch(run.runId, 0), LaunchRecord))?.value.execution).toBeUndefined();
    // Not claimed yet: another process must not start a second execution.
    await expect(startLaunch({ ...options, launcher })).rejects.toMatchObject({ code: "PRECONDITION_FAILED" });
    // The execution's first task claims the launch, as the worker does.
    const id = fake.executions()[0]!.split("/").pop()!;
    expect(await checkLaunchClaim(store, run.runId, 0, { job: "shardrun-docs", execution: id })).toBeNull();
    const adopted = await startLaunch({ ...options, launcher });
    expect(adopted.value).toMatchObject({ execution: `jobs/shardrun-docs/executions/${id}`, state: "running", taskCount: 2 });
    expect((await launcher.getExecution(adopted.value.execution!))?.name).toBe(fake.executions()[0]);
    expect(fake.calls("RunJob")).toHaveLength(1);
  });

  it("gives a launch up at once when the launcher refused it, and its late tasks then do nothing", async () => {
    const store = new FsObjectStore(join(stateDir, "store"));
    const run = { runId: "20260101-000000-docs-ab12", job: { name: "missing" }, settings: { leaseTtlMs: 30_000 } } as RunRecord;
    const options = { store, run, n: 0, shards: [0], taskCount: 1, parallelism: 1, taskTimeoutSeconds: 90, maxRetries: 1 };
    await expect(startLaunch({ ...options, launcher })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await checkLaunchClaim(store, run.runId, 0, { job: "shardrun-missing", execution: "shardrun-missing-abcde" })).toMatch(/given up/);
    await expect(startLaunch({ ...options, launcher })).rejects.toMatchObject({ code: "PRECONDITION_FAILED", message: expect.stringContaining("given up") });
  });
});

/** The port's methods of a launcher, bound, so that a test can replace one of them. */
function launcherPort(l: CloudRunLauncher): Launcher {
  return { kind: l.kind, launch: (r) => l.launch(r), getExecution: (n) => l.getExecution(n), cancel: (n) => l.cancel(n) };
}

describe("deployJob on the gRPC fake", () => {
  let stateDir: string;
  let fake: CloudRunFake;
  let spec: DeployJobSpec;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "shardrun-fake-deploy-"));
    fake = await CloudRunFake.start({ backing: new compiled.LocalLauncher({ stateDir, command: TASK_COMMAND }) });
    spec = {
      project: fake.project,
      region: fake.region,
      name: "shardrun-docs",
      image: "europe-west1-docker.pkg.dev/p/shardrun/worker:1",
      taskTimeoutSeconds: 3600,
      maxRetries: 2,
      serviceAccount: "shardrun-tasks@p.iam.gserviceaccount.com",
      env: { SHARDRUN_LOG_FORMAT: "json" },
      memory: "1Gi",
      cpu: "1",
    };
  });
  afterEach(async () => {
    await fake.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  const deploy = (s: DeployJobSpec, dryRun = false) => deployJob(s, { dryRun, clientOptions: fake.clientOptions() });
  // No parallelism: left unset (0 is not sent), so that every launch's task count is valid.
  const wanted = {
    template: {
      taskCount: 1,
      template: {
        containers: [{ image: "europe-west1-docker.pkg.dev/p/shardrun/worker:1", env: [{ name: "SHARDRUN_LOG_FORMAT", value: "json" }], resources: { limits: { memory: "1Gi", cpu: "1" } } }],
        maxRetries: 2,
        timeout: { seconds: "3600" },
        serviceAccount: "shardrun-tasks@p.iam.gserviceaccount.com",
      },
    },
  };

  it("shows the job it would create on a dry run, and only reads", async () => {
    const result = await deploy(spec, true);
    expect(result).toEqual({ action: "create", job: { name: fake.jobPath("shardrun-docs"), client: "shardrun", ...wanted }, changes: [] });
    expect(fake.requests.map((r) => r.method)).toEqual(["GetJob"]);
  });

  it("creates the job, leaves it alone when nothing changed, and updates it conditionally when something did", async () => {
    const created = await deploy(spec);
    expect(created).toMatchObject({ action: "create", job: { name: fake.jobPath("shardrun-docs"), generation: "1", ...wanted } });
    expect(fake.calls("CreateJob")).toEqual([{ parent: fake.parent, jobId: "shardrun-docs", job: { client: "shardrun", ...wanted } }]);

    expect(await deploy(spec)).toMatchObject({ action: "unchanged", changes: [], job: { generation: "1" } });

    const next = { ...spec, image: "europe-west1-docker.pkg.dev/p/shardrun/worker:2", env: { SHARDRUN_LOG_FORMAT: "text" } };
    const dry = await deploy(next, true);
    expect(dry).toMatchObject({ action: "update", changes: ["image", "env"] });
    expect(fake.calls("UpdateJob")).toHaveLength(0);

    const updated = await deploy(next);
    expect(updated).toMatchObject({ action: "update", changes: ["image", "env"], job: { generation: "2" } });
    const sent = fake.calls("UpdateJob");
    expect(sent).toHaveLength(1);
    expect(sent[0]!.job).toMatchObject({ name: fake.jobPath("shardrun-docs"), etag: created.job.etag });
    expect(sent[0]!.job.template.template.containers[0]).toMatchObject({ image: next.image, env: [{ name: "SHARDRUN_LOG_FORMAT", value: "text" }] });
    expect(await deploy(next)).toMatchObject({ action: "unchanged" });
  });

  it("keeps the settings it does not manage when it updates", async () => {
    await deploy(spec);
    // Someone adds a label, a VPC connector and a secret env var in the console.
    const client = new JobsClient(fake.clientOptions());
    const [job] = await client.getJob({ name: fake.jobPath("shardrun-docs") });
    job.labels = { team: "data" };
    job.template!.template!.vpcAccess = { connector: "projects/p/locations/r/connectors/c" };
    job.template!.template!.containers![0]!.env!.push({ name: "API_KEY", valueSource: { secretKeyRef: { secret: "api-key", version: "latest" } } });
    await (await client.updateJob({ job }))[0].promise();
    await client.close();

    expect(await deploy(spec)).toMatchObject({ action: "unchanged" });
    const result = await deploy({ ...spec, maxRetries: 0 });
    expect(result.changes).toEqual(["maxRetries"]);
    expect(result.job).toMatchObject({
      labels: { team: "data" },
      template: {
        template: {
          maxRetries: 0,
          vpcAccess: { connector: "projects/p/locations/r/connectors/c" },
          containers: [{ env: [{ name: "SHARDRUN_LOG_FORMAT", value: "json" }, { name: "API_KEY", valueSource: { secretKeyRef: { secret: "api-key", version: "latest" } } }] }],
        },
      },
    });
  });

  it("leaves the job's parallelism unset, unsets one deployed before, and refuses any other", async () => {
    fake.putJob("shardrun-docs", { parallelism: 10, taskCount: 10 });
    const fixed = await deploy(spec);
    expect(fixed.changes).toContain("parallelism");
    expect(fake.calls("UpdateJob")[0]!.job.template.parallelism ?? 0).toBe(0);
    expect((await deploy(spec)).action).toBe("unchanged");
    // A 1-task launch, below any parallelism a job could be deployed with, runs.
    const launcher = new CloudRunLauncher({ project: fake.project, region: fake.region, clientOptions: fake.clientOptions() });
    const execution = await launcher.launch({ jobName: "shardrun-docs", runId: "20260101-000000-docs-ab12", launch: 0, taskCount: 1, parallelism: 1, taskTimeoutSeconds: 60, maxRetries: 0, env: { TEST_OUT: stateDir } });
    expect(execution).toMatch(/executions\/shardrun-docs-/);
    await launcher.close();
    await expect(deploy({ ...spec, parallelism: 10 })).rejects.toMatchObject({ code: "INVALID_INPUT", message: expect.stringMatching(/parallelism.*Expected parallelism 0/) });
  });

  it("rejects a bad spec before calling the API, naming the field", async () => {
    await expect(deploy({ ...spec, name: "Bad_Name" })).rejects.toMatchObject({ code: "INVALID_INPUT", message: expect.stringContaining("name") });
    await expect(deploy({ ...spec, env: { CLOUD_RUN_TASK_INDEX: "1" } })).rejects.toMatchObject({ code: "INVALID_INPUT", message: expect.stringContaining("CLOUD_RUN_") });
    await expect(deploy({ ...spec, maxRetries: 11 })).rejects.toMatchObject({ code: "INVALID_INPUT", message: expect.stringContaining("maxRetries") });
    expect(fake.requests).toEqual([]);
  });
});

describe("a whole run: cloud-run launcher -> fake Cloud Run API -> worker processes", () => {
  it("finishes every item exactly once, also after a task is killed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "shardrun-fake-whole-"));
    const store = new FsObjectStore(join(dir, "store"));
    const backing = new compiled.LocalLauncher({ stateDir: join(dir, "executions"), command: WORKER_COMMAND, killGraceSeconds: 2 });
    const fake = await CloudRunFake.start({ backing });
    const launcher = new CloudRunLauncher({ project: fake.project, region: fake.region, clientOptions: fake.clientOptions(), retry: { minDelayMs: 20, maxDelayMs: 200 } });
    let watching = true;
    try {
      const resolved = resolveJob(join(REPO, "test/fixtures/jobs/sleepy.ts"), REPO, REPO);
      const { job, module, version, key, bundle } = await prepareJob(resolved);
      const log = join(dir, "items.log");
      const run = await planRun({
        store,
        job,
        module,
        version,
        bundle: { key, bytes: bundle.bytes },
        args: { count: 60, sleepMs: 40, log },
        settings: { leaseTtlMs: 5000, taskTimeoutSeconds: 60, maxRetries: 2, maxLaunches: 3, tasks: 3, parallelism: 3 },
        trigger: "test",
      });
      fake.putJob(`shardrun-${job.name}`, { maxRetries: 2 });
      // One task attempt dies mid-run, as a crashed container would: Cloud Run retries it.
      let killed = 0;
      const killer = (async () => {
        while (watching) {
          await new Promise((r) => setTimeout(r, 50));
          const name = fake.executions()[0];
          const status = name ? await backing.getExecution(name.split("/").pop()!) : null;
          if (!status || isTerminal(status.state)) {
            if (status) return;
            continue;
          }
          const done = existsSync(log) ? readFileSync(log, "utf8").split("\n").length : 0;
          const pid = status.tasks.find((t) => t.state === "running" && t.pid)?.pid;
          if (done >= 10 && pid && !killed) {
            process.kill(pid, "SIGKILL");
            killed++;
          }
        }
      })();
      const status = await driveRun({ store, launcher, runId: run.runId, pollMs: 100 });
      await killer;
      expect(killed).toBe(1);
      expect(status).toMatchObject({ state: "succeeded", items: { total: 60, succeeded: 60, failed: 0 } });
      const outputKeys: string[] = [];
      for await (const line of mergedOutput(store, run.runId)) outputKeys.push((JSON.parse(line) as { key: string }).key);
      expect(outputKeys.sort()).toEqual(Array.from({ length: 60 }, (_, n) => `item-${n}`).sort());
      // One execution did it all, the killed task on its second attempt.
      expect(fake.executions()).toHaveLength(1);
      const execution = await launcher.getExecution(fake.executions()[0]!);
      expect(execution).toMatchObject({ state: "succeeded", succeeded: 3 });
      expect(execution!.tasks.map((t) => t.attempts).sort()).toEqual([1, 1, 2]);
      expect(fake.calls("RunJob")[0]!.overrides.containerOverrides[0].env).toEqual(
        expect.arrayContaining([
          { name: "SHARDRUN_STORE", value: store.url },
          { name: "SHARDRUN_RUN", value: run.runId },
        ]),
      );
    } finally {
      watching = false;
      await launcher.close();
      await fake.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
