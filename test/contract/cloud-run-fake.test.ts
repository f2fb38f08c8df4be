/**
 * The Cloud Run fake refuses what Cloud Run refuses and leaves undocumented behaviour to the
 * test: checked here through the real @google-cloud/run clients, so that the launcher's tests
 * meet a world at least as strict as Cloud Run.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExecutionsClient, JobsClient } from "@google-cloud/run";
import { afterEach, beforeAll, beforeEach, describe, expect, it, afterAll } from "vitest";
import { GrpcCode } from "../../src/launcher/cloud-run.js";
import { CloudRunFake } from "../fakes/cloud-run-fake.js";
import { compiledLocalLauncher, TASK_COMMAND } from "./launcher-contract.js";

let compiled: Awaited<ReturnType<typeof compiledLocalLauncher>>;
beforeAll(async () => {
  compiled = await compiledLocalLauncher();
});
afterAll(async () => {
  await compiled?.dispose();
});

describe("Cloud Run fake", () => {
  let dir: string;
  let fake: CloudRunFake;
  let jobs: JobsClient;
  let executions: ExecutionsClient;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "shardrun-run-fake-"));
    fake = await CloudRunFake.start({ backing: new compiled.LocalLauncher({ stateDir: dir, command: TASK_COMMAND, killGraceSeconds: 1 }) });
    jobs = new JobsClient(fake.clientOptions());
    executions = new ExecutionsClient(fake.clientOptions());
  });
  afterEach(async () => {
    await jobs.close();
    await executions.close();
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  const job = (parallelism: number, taskCount: number) => ({
    template: { parallelism, taskCount, template: { containers: [{ image: "fake.example/shardrun:1", env: [{ name: "TEST_OUT", value: dir }] }], maxRetries: 0 } },
  });
  const run = (id: string, taskCount: number, env: Record<string, string> = {}) =>
    jobs.runJob({
      name: fake.jobPath(id),
      overrides: { taskCount, containerOverrides: [{ env: Object.entries(env).map(([name, value]) => ({ name, value })) }] },
    });
  const code = (p: Promise<unknown>) => p.then(() => "ok", (e: { code?: number }) => e.code);

  it("refuses a parallelism above the task count on CreateJob, UpdateJob and RunJob with overrides (INVALID_ARGUMENT)", async () => {
    expect(await code(jobs.createJob({ parent: fake.parent, jobId: "too-parallel", job: job(10, 3) }))).toBe(GrpcCode.INVALID_ARGUMENT);
    await (await jobs.createJob({ parent: fake.parent, jobId: "p3", job: job(3, 3) }))[0].promise();
    const [current] = await jobs.getJob({ name: fake.jobPath("p3") });
    current.template!.parallelism = 5;
    expect(await code(jobs.updateJob({ job: current }))).toBe(GrpcCode.INVALID_ARGUMENT);
    // A 2-task execution of a parallelism-3 job: what a small run or a continuation would send.
    expect(await code(run("p3", 2))).toBe(GrpcCode.INVALID_ARGUMENT);
    expect(await code(run("p3", 3))).toBe("ok");
    expect(() => fake.putJob("also-too-parallel", { parallelism: 4, taskCount: 1 })).toThrow(/parallelism/);
  });

  it("runs every task of an execution at once when the job's parallelism is 0 (unset)", async () => {
    await (await jobs.createJob({ parent: fake.parent, jobId: "unset", job: job(0, 1) }))[0].promise();
    for (const taskCount of [1, 2, 7]) {
      const [operation] = await run("unset", taskCount);
      const [ex] = await executions.getExecution({ name: (operation.metadata as { name: string }).name });
      expect({ taskCount: ex.taskCount, parallelism: ex.parallelism }).toEqual({ taskCount, parallelism: taskCount });
    }
  });

  it("lists executions in the order the test chooses, and a new one only after the listing delay", async () => {
    fake.putJob("listed");
    fake.addFinishedExecutions("listed", 3);
    const names = async () => (await executions.listExecutions({ parent: fake.jobPath("listed") }, { autoPaginate: true }))[0].map((e) => e.name!);
    const history = fake.executions();
    expect(await names()).toEqual([...history].reverse());
    fake.listOrder = "oldest-first";
    expect(await names()).toEqual(history);
    fake.listOrder = "random";
    expect([...(await names())].sort()).toEqual([...history].sort());

    fake.listDelayMs = 60_000;
    const [operation] = await run("listed", 1);
    const started = (operation.metadata as { name: string }).name;
    expect(await names()).not.toContain(started);
    // GetExecution knows it at once: only the listing lags.
    expect((await executions.getExecution({ name: started }))[0].name).toBe(started);
    fake.listDelayMs = 0;
    expect(await names()).toContain(started);
  });

  it("can leave the override env out of Execution.template", async () => {
    fake.putJob("env", { env: { FROM_JOB: "1" } });
    fake.overrideEnvInTemplate = false;
    const [operation] = await run("env", 1, { SHARDRUN_RUN: "r", SHARDRUN_LAUNCH: "0" });
    const [ex] = await executions.getExecution({ name: (operation.metadata as { name: string }).name });
    expect(ex.template!.containers![0]!.env!.map((e) => e.name)).toEqual(["FROM_JOB"]);
  });
});
