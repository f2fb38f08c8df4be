/**
 * The whole Google Cloud path through the CLI, offline: `shardrun deploy` creates the Cloud Run
 * job on the gRPC fake, `shardrun run --store gs://…` plans into fake-gcs-server and launches
 * through the real @google-cloud/run client, the fake starts the tasks as worker processes that
 * use the gcs store, one task is SIGKILLed mid-run, and the output holds every item once.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isTerminal } from "../../src/launcher/port.js";
import { findFakeGcs, startFakeGcs, type FakeGcs } from "../contract/fault-proxy.js";
import { WORKER_COMMAND, compiledLocalLauncher } from "../contract/launcher-contract.js";
import { CloudRunFake } from "../fakes/cloud-run-fake.js";
import { SLEEPY, cli, parseLines, sleep, startCli } from "./helpers.js";

const found = findFakeGcs();
if (found.missing) {
  if (process.env.CI) throw new Error(`CI must run the Cloud path: ${found.missing}`);
  console.warn(`skipping the Cloud e2e test: ${found.missing}`);
}

describe.skipIf(!found.bin)("on Google Cloud (fakes): deploy, run with a gs:// store and Cloud Run tasks", () => {
  let gcs: FakeGcs;
  let fake: CloudRunFake;
  let dir: string;
  let dispose: () => Promise<void>;
  let backing: InstanceType<Awaited<ReturnType<typeof compiledLocalLauncher>>["LocalLauncher"]>;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "shardrun-cloud-e2e-"));
    gcs = await startFakeGcs(found.bin!);
    await gcs.createBucket("shardrun-e2e");
    const compiled = await compiledLocalLauncher();
    dispose = compiled.dispose;
    // The fake's "containers" run the worker with this environment, as the image would on Cloud
    // Run (where the store is real Cloud Storage and needs no emulator host).
    backing = new compiled.LocalLauncher({
      stateDir: join(dir, "executions"),
      command: WORKER_COMMAND,
      killGraceSeconds: 2,
      // Their own bundle cache, empty: the job's code can only come from the run's bundle in the bucket.
      env: { STORAGE_EMULATOR_HOST: gcs.url, SHARDRUN_BUNDLE_CACHE: join(dir, "task-bundles") },
    });
    fake = await CloudRunFake.start({ backing });
    env = { SHARDRUN_CLOUD_RUN_ENDPOINT: `127.0.0.1:${fake.port}`, STORAGE_EMULATOR_HOST: gcs.url };
  });

  afterAll(async () => {
    await fake?.close();
    await gcs?.stop();
    await dispose?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("deploys the job, runs it to the end with a task killed, and every item comes out once", async () => {
    const where = ["--project", fake.project, "--region", fake.region];
    const deploy = await cli(["deploy", SLEEPY, ...where, "--image", "fake.example/shardrun:test", "--json"], dir, env);
    expect(deploy.stderr).toBe("");
    expect(deploy.code).toBe(0);
    expect(JSON.parse(deploy.stdout).results[0]).toMatchObject({ job: "sleepy", action: "create" });
    const again = await cli(["deploy", SLEEPY, ...where, "--image", "fake.example/shardrun:test", "--json"], dir, env);
    expect(JSON.parse(again.stdout).results[0].action).toBe("unchanged");

    const store = "gs://shardrun-e2e/runs";
    const log = join(dir, "executions.jsonl");
    const count = 150;
    const run = startCli(["run", SLEEPY, ...where, "--store", store, "--tasks", "3", "--json", "--arg", `count=${count}`, "--arg", "sleepMs=40", "--arg", `log=${log}`], dir, env);
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
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: Record<string, number>; launches: { execution: string; url?: string }[] };
    expect(status).toMatchObject({ state: "succeeded", items: { total: count, succeeded: count, failed: 0, pending: 0 } });
    expect(status.launches[0]!.execution).toMatch(new RegExp(`^projects/${fake.project}/locations/${fake.region}/jobs/shardrun-sleepy/executions/`));

    // Another process reads the same run from the bucket: status with the console link, output.
    const st = await cli(["status", status.runId, "--store", store, ...where], dir, env);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain("https://console.cloud.google.com/run/jobs/executions/details/");
    const out = await cli(["output", status.runId, "--store", store], dir, env);
    const keys = parseLines(out.stdout).map((l) => l.key);
    expect(keys).toHaveLength(count);
    expect(new Set(keys).size).toBe(count);
    // The task that was killed came back as attempt 2 of the same execution.
    const execution = await backing.getExecution(fake.executions()[0]!.split("/").pop()!);
    expect(execution!.tasks.map((t) => t.attempts).sort()).toEqual([1, 1, 2]);
    // The tasks ran the bundle the run recorded, fetched from the bucket.
    expect(readdirSync(join(dir, "task-bundles")).filter((f) => f.endsWith(".mjs"))).toEqual([expect.stringMatching(/^[0-9a-f]{64}\.mjs$/)]);
    const runs = JSON.parse((await cli(["runs", "--store", store, "--json"], dir, env)).stdout) as { runId: string }[];
    expect(runs.map((x) => x.runId)).toContain(status.runId);
  });
});
