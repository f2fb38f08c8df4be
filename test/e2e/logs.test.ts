/**
 * `shardrun logs` through the CLI: a local run's task logs read from the executions folder (by
 * item, shard and task, followed while the run goes on), and a Cloud Run run's logs read from
 * Cloud Logging through the real `@google-cloud/logging` client, against a gRPC fake that holds
 * what Cloud Run's logging agent would have shipped from the tasks.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareJob, resolveJob } from "../../src/config/jobs.js";
import { CloudRunLauncher } from "../../src/launcher/cloud-run.js";
import { driveRun } from "../../src/orchestrator/drive.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { compiledLocalLauncher, WORKER_COMMAND } from "../contract/launcher-contract.js";
import { CloudLoggingFake } from "../fakes/cloud-logging-fake.js";
import { CloudRunFake } from "../fakes/cloud-run-fake.js";
import { failingItems } from "../fixtures/jobs/flaky.js";
import { ROOT, cli, parseLines, startCli, tempDir } from "./helpers.js";

const FLAKY = join(ROOT, "test", "fixtures", "jobs", "flaky.ts");
const key = (n: number) => `doc-${String(n).padStart(5, "0")}`;

interface Record {
  time: string;
  severity: string;
  message: string;
  labels: { [k: string]: string };
  fields: { [k: string]: unknown };
  source: string;
}

describe("shardrun logs: a local run", () => {
  let dir: string;
  let runId: string;
  const fate = failingItems(300, 2, 1);
  const fatal = [...fate.fatal][0]!;

  beforeAll(async () => {
    dir = tempDir();
    const r = await cli(["run", FLAKY, "--local", "--json", "--tasks", "2", "--arg", "count=300"], dir);
    expect(r.code).toBe(3);
    runId = (JSON.parse(r.stdout) as { runId: string }).runId;
  });

  it("--item shows that item's lines: its own, and the line that failed it", async () => {
    const r = await cli(["logs", runId, "--item", key(fatal), "--json"], dir);
    expect(r.code).toBe(0);
    const lines = parseLines<Record>(r.stdout);
    expect(lines.map((l) => l.message)).toEqual(["summarizing document", "item failed"]);
    for (const l of lines) expect(l.labels.item ?? l.fields.item).toBe(key(fatal));
    expect(lines[1]).toMatchObject({ severity: "WARNING", fields: { reason: "non_retriable" } });
    expect(lines.every((l) => l.labels.run === runId && l.labels.task !== undefined && l.labels.shard !== undefined)).toBe(true);
    // The same as text, for people.
    const text = await cli(["logs", runId, "--item", key(fatal)], dir);
    expect(text.stdout.trim().split("\n")).toHaveLength(2);
    expect(text.stdout).toContain(`document ${fatal} is malformed`);
  });

  it("--shard and --task choose by the worker's labels; a filter that matches nothing says so", async () => {
    const shard = parseLines<Record>((await cli(["logs", runId, "--shard", "1", "--json"], dir)).stdout);
    // Shard 1 holds items 250-299: a line each attempt, and the task's lines about the shard.
    expect(new Set(shard.filter((l) => l.message === "summarizing document").map((l) => l.labels.item))).toEqual(new Set(Array.from({ length: 50 }, (_, k) => key(250 + k))));
    expect(shard.every((l) => l.labels.shard === "s000001" || l.fields.shard === "s000001")).toBe(true);
    const task = parseLines<Record>((await cli(["logs", runId, "--task", "1", "--json"], dir)).stdout);
    expect(task.length).toBeGreaterThan(0);
    expect(task.every((l) => l.labels.task === "1")).toBe(true);
    const none = await cli(["logs", runId, "--item", "no-such-item"], dir);
    expect(none).toMatchObject({ code: 0, stdout: "" });
    expect(none.stderr).toBe(`run ${runId}: no log lines match\n`);
  });

  it("refuses a bad --shard on one line, and an unknown run", async () => {
    const bad = await cli(["logs", runId, "--shard", "first"], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('shardrun: --shard: expected a shard id like s000012 (or its number, 12), got "first"\n');
    const unknown = await cli(["logs", "20260101-000000-flaky-0000"], dir);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^shardrun: no run 20260101-000000-flaky-0000 in file:\/\//);
  });

  it("--follow prints lines while the run goes on and ends when it ends", async () => {
    const run = startCli(["run", FLAKY, "--local", "--json", "--tasks", "2", "--arg", "count=60", "--arg", "sleepMs=100", "--arg", "fatalPct=0", "--arg", "transientPct=0"], dir);
    // The follower starts once the run exists.
    let id: string | undefined;
    for (let tries = 0; !id && tries < 200; tries++) {
      const list = await cli(["runs", "--state", "running", "--json"], dir);
      id = (JSON.parse(list.stdout) as { runId: string }[])[0]?.runId;
      if (!id) await new Promise((r) => setTimeout(r, 100));
    }
    const follow = await cli(["logs", id!, "--follow", "--json"], dir);
    const ran = await run.done;
    expect(ran.code).toBe(0);
    expect(follow.code).toBe(0);
    const lines = parseLines<Record>(follow.stdout);
    // Every item's line, the last ones included: it read on until the run ended.
    const items = new Set(lines.filter((l) => l.labels.item).map((l) => l.labels.item));
    expect(items.size).toBe(60);
    expect(lines.some((l) => l.message === "task finished")).toBe(true);
  });
});

describe("shardrun logs: a Cloud Run run, from Cloud Logging", () => {
  let compiled: Awaited<ReturnType<typeof compiledLocalLauncher>>;
  let stateDir: string;
  let storeDir: string;
  let runFake: CloudRunFake;
  let logging: CloudLoggingFake;
  let runId: string;
  let env: NodeJS.ProcessEnv;
  const fate = failingItems(40, 0, 5);
  const fatal = [...fate.fatal][0]!;

  beforeAll(async () => {
    compiled = await compiledLocalLauncher();
    stateDir = await mkdtemp(join(tmpdir(), "shardrun-logs-cloud-"));
    storeDir = join(stateDir, "store");
    runFake = await CloudRunFake.start({ backing: new compiled.LocalLauncher({ stateDir: join(stateDir, "executions"), command: WORKER_COMMAND, killGraceSeconds: 1 }) });
    logging = await CloudLoggingFake.start({ project: runFake.project });
    const launcher = new CloudRunLauncher({ project: runFake.project, region: runFake.region, clientOptions: runFake.clientOptions() });
    const store = new FsObjectStore(storeDir);
    const { job, module, version, key: bundleKey, bundle } = await prepareJob(resolveJob(FLAKY, ROOT));
    runFake.putJob(`shardrun-${job.name}`, { maxRetries: 1 });
    const run = await planRun({
      store,
      job,
      module,
      version,
      bundle: { key: bundleKey, bytes: bundle.bytes },
      args: { count: 40, transientPct: 0, fatalPct: 5 },
      settings: { leaseTtlMs: 5000, taskTimeoutSeconds: 60, maxRetries: 1, maxLaunches: 2, tasks: 2 },
      trigger: "test",
    });
    runId = run.runId;
    const status = await driveRun({ store, launcher, runId, pollMs: 100 });
    expect(status.state).toBe("partial");
    await launcher.close();
    // What Cloud Run's logging agent would have shipped from the containers.
    expect(logging.shipTaskLogs(join(stateDir, "executions"), runFake.executions())).toBeGreaterThan(40);
    env = { SHARDRUN_CLOUD_LOGGING_ENDPOINT: logging.endpoint, SHARDRUN_PROJECT: "", GOOGLE_CLOUD_PROJECT: "", SHARDRUN_REGION: "" };
  });

  afterAll(async () => {
    await logging?.close();
    await runFake?.close();
    await compiled?.dispose();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it("--item asks Cloud Logging for that item's entries of the run's Cloud Run job and prints them", async () => {
    const r = await cli(["logs", runId, "--store", storeDir, "--project", runFake.project, "--item", key(fatal), "--json"], stateDir, env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = parseLines<Record>(r.stdout);
    expect(lines.map((l) => l.message)).toEqual(["summarizing document", "item failed"]);
    expect(lines[1]).toMatchObject({ severity: "WARNING", labels: { run: runId }, fields: { item: key(fatal), reason: "non_retriable" } });
    expect(lines[0]!.source).toMatch(/^shardrun-flaky-[0-9a-z]+\/task-\d$/);
    const request = logging.requests.at(-1)!;
    expect(request.resourceNames).toEqual([`projects/${runFake.project}`]);
    expect(request.orderBy).toBe("timestamp asc");
    expect(request.filter).toContain('resource.type="cloud_run_job"');
    expect(request.filter).toContain('resource.labels.job_name=("shardrun-flaky")');
    expect(request.filter).toContain(`labels.run="${runId}"`);
    expect(request.filter).toContain(`(labels.item="${key(fatal)}" OR jsonPayload.item="${key(fatal)}")`);
  });

  it("all of the run's lines, oldest first; --shard narrows them", async () => {
    const all = parseLines<Record>((await cli(["logs", runId, "--store", storeDir, "--project", runFake.project, "--json"], stateDir, env)).stdout);
    expect(all.filter((l) => l.message === "summarizing document")).toHaveLength(40);
    expect(all.every((l) => l.labels.run === runId)).toBe(true);
    expect([...all].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0)).map((l) => l.time)).toEqual(all.map((l) => l.time));
    const shard = parseLines<Record>((await cli(["logs", runId, "--store", storeDir, "--project", runFake.project, "--shard", "s000000", "--json"], stateDir, env)).stdout);
    expect(shard.length).toBeGreaterThan(0);
    expect(shard.length).toBeLessThan(all.length);
    expect(shard.every((l) => l.labels.shard === "s000000" || l.fields.shard === "s000000")).toBe(true);
  });

  it("needs a project to know where the logs are, and says so on one line", async () => {
    const r = await cli(["logs", runId, "--store", storeDir, "--item", key(fatal)], stateDir, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`shardrun: logs: run ${runId} ran on Cloud Run, whose logs are in Cloud Logging: give --project (or set SHARDRUN_PROJECT)\n`);
  });
});
