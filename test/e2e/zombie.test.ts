/**
 * A zombie: attempt 0 of a task is frozen (SIGSTOP) while holding a shard, attempt 1 of the same
 * task takes the shard over and finishes it, then the zombie wakes up (SIGCONT) with items in
 * hand. Fencing must stop it: it commits nothing, and the output holds every item once.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENV } from "../../src/config/env.js";
import { jobVersion, loadJob, resolveJob } from "../../src/config/jobs.js";
import { keys } from "../../src/core/keys.js";
import { Checkpoint, type LaunchRecord } from "../../src/core/model.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson, putJson } from "../../src/store/json.js";
import { listAll } from "../../src/store/port.js";
import { ROOT, SLEEPY, sleep, tempDir } from "./helpers.js";

const WORKER = join(ROOT, "dist", "src", "worker", "main.js");

function startWorker(storeDir: string, runId: string, attempt: number, logFile: string) {
  const child = spawn(process.execPath, [WORKER], {
    env: {
      ...process.env,
      [ENV.execution]: "shardrun-sleepy-zz000",
      [ENV.taskIndex]: "0",
      [ENV.taskCount]: "1",
      [ENV.taskAttempt]: String(attempt),
      [ENV.store]: storeDir,
      [ENV.run]: runId,
      [ENV.launch]: "0",
      [ENV.logFormat]: "json",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return { child, exited, log: () => log, logFile };
}

describe("zombie attempt", () => {
  it("a stale owner that wakes up after a takeover commits nothing", async () => {
    const dir = tempDir();
    const storeDir = join(dir, "store");
    const store = new FsObjectStore(storeDir);
    const resolved = resolveJob(SLEEPY, ROOT);
    const job = await loadJob(resolved.absPath);
    const run = await planRun({
      store,
      job,
      module: resolved.module,
      version: jobVersion(resolved.absPath),
      args: { count: "40", sleepMs: "100" },
      policy: { itemsPerShard: 40 },
      settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 3600, maxRetries: 3, maxLaunches: 1, tasks: 1 },
      trigger: "test",
    });
    const shard = run.plan.shards[0]!.id;
    const launch: LaunchRecord = {
      v: 1,
      runId: run.runId,
      n: 0,
      createdAt: new Date().toISOString(),
      launcher: "local",
      taskCount: 1,
      parallelism: 1,
      taskTimeoutSeconds: 3600,
      maxRetries: 3,
      claim: "static",
      assignment: [[shard]],
      execution: "shardrun-sleepy-zz000",
      state: "running",
    };
    await putJson(store, keys.launch(run.runId, 0), launch, { ifGenerationMatch: 0 });
    const cpKey = keys.checkpoint(run.runId, shard);
    const readCp = async () => (await getJson(store, cpKey, Checkpoint))?.value ?? null;

    // Attempt 0 runs until it has committed some items, then freezes with more in flight.
    const zombie = startWorker(storeDir, run.runId, 0, "a0");
    for (let i = 0; i < 200; i++) {
      const cp = await readCp();
      if (cp && cp.parts.length >= 1) break;
      await sleep(50);
    }
    await sleep(300); // items are in flight and finished-but-uncommitted ones pile up
    zombie.child.kill("SIGSTOP");
    const beforeTakeover = (await readCp())!;
    expect(beforeTakeover.owner?.attempt).toBe(0);
    expect(beforeTakeover.state).toBe("open");

    // Attempt 1 of the same task takes over at once and finishes the shard.
    const successor = startWorker(storeDir, run.runId, 1, "a1");
    expect(await successor.exited).toBe(0);
    const finished = (await readCp())!;
    expect(finished.state).toBe("done");
    expect(finished.epoch).toBe(beforeTakeover.epoch + 1);

    // The zombie wakes up: its next checkpoint write fails its precondition and it stops.
    zombie.child.kill("SIGCONT");
    expect(await zombie.exited).toBe(0);
    expect(zombie.log()).toContain("lease lost");

    const after = (await readCp())!;
    expect(after).toEqual(finished);
    // The zombie's epoch committed exactly what it had committed before it froze.
    const zombieParts = after.parts.filter((p) => p.name.startsWith(String(beforeTakeover.epoch).padStart(6, "0")));
    expect(zombieParts).toEqual(beforeTakeover.parts);
    // Whatever it wrote after waking is an orphan part that no checkpoint names.
    const allParts = [];
    for await (const k of listAll(store, keys.partsPrefix(run.runId, shard))) allParts.push(k.split("/").pop()!);
    const named = new Set(after.parts.map((p) => p.name));
    const orphans = allParts.filter((p) => !named.has(p));
    for (const o of orphans) expect(o.startsWith(String(beforeTakeover.epoch).padStart(6, "0"))).toBe(true);

    const lines: string[] = [];
    for await (const l of mergedOutput(store, run.runId)) lines.push(l);
    const keysOut = lines.map((l) => (JSON.parse(l) as { key: string }).key);
    expect(keysOut).toHaveLength(40);
    expect(new Set(keysOut).size).toBe(40);
  });
});
