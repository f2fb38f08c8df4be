/**
 * Nothing lost, nothing twice: whole runs through the CLI while task processes are SIGKILLed at
 * random moments or time out, then the merged output must hold every item exactly once, and no
 * item that a checkpoint had committed may have run again in a later epoch.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SLEEPY, cli, executionFiles, parseLines, prng, runningTaskPids, sleep, startCli, tempDir } from "./helpers.js";

interface ExecLine {
  key: string;
  epoch: number;
  shard: string;
}

/** item key -> epoch of the part that committed it, read from the final checkpoints. */
function committedEpochs(storeDir: string, runId: string): Map<string, number> {
  const out = new Map<string, number>();
  const shardsDir = join(storeDir, "runs", runId, "shards");
  const latest = (dir: string) => {
    const gens = readdirSync(dir).map(Number).filter(Number.isFinite).sort((a, b) => b - a);
    for (const g of gens) {
      const bytes = readFileSync(join(dir, String(g)));
      if (bytes.length && bytes[0] === "D".charCodeAt(0)) return bytes.subarray(1).toString("utf8");
    }
    throw new Error(`no live generation in ${dir}`);
  };
  for (const shard of readdirSync(shardsDir)) {
    const cp = JSON.parse(latest(join(shardsDir, shard, "checkpoint.json@"))) as { parts: { name: string }[] };
    for (const part of cp.parts) {
      const epoch = Number(part.name.split("-")[0]);
      for (const line of parseLines<{ key: string }>(latest(join(shardsDir, shard, "out", `${part.name}@`)))) out.set(line.key, epoch);
    }
  }
  return out;
}

function assertExactlyOnce(outputText: string, count: number): void {
  const keys = parseLines(outputText).map((l) => l.key);
  expect(keys).toHaveLength(count);
  expect(new Set(keys).size).toBe(count);
  expect([...keys].sort()).toEqual(Array.from({ length: count }, (_, n) => `item-${n}`).sort());
}

describe("chaos: killed and timed-out tasks", () => {
  for (const seed of [1, 2]) {
    it(`finishes every item exactly once while tasks are SIGKILLed (seed ${seed})`, async () => {
      const dir = tempDir();
      const log = join(dir, "executions.jsonl");
      const store = join(dir, ".shardrun");
      const count = 400;
      const run = startCli(
        ["run", SLEEPY, "--local", "--tasks", "3", "--max-retries", "10", "--max-launches", "20", "--json", "--arg", `count=${count}`, "--arg", "sleepMs=100", "--arg", `log=${log}`],
        dir,
      );
      const random = prng(seed);
      let kills = 0;
      let finished = false;
      void run.done.then(() => (finished = true));
      while (!finished) {
        await sleep(500 + random() * 2000); // a kill about every 1.5 s
        const pids = runningTaskPids(store);
        if (!pids.length) continue;
        try {
          process.kill(pids[Math.floor(random() * pids.length)]!, "SIGKILL");
          kills++;
        } catch {
          // it ended by itself meanwhile
        }
      }
      const r = await run.done;
      expect(r.stderr).not.toContain("internal error");
      expect(r.code).toBe(0);
      expect(kills).toBeGreaterThanOrEqual(2);
      const status = JSON.parse(r.stdout) as { runId: string; state: string; items: Record<string, number>; executions: number };
      expect(status.state).toBe("succeeded");
      expect(status.items).toEqual({ total: count, succeeded: count, failed: 0, pending: 0 });

      const out = await cli(["output", status.runId], dir);
      assertExactlyOnce(out.stdout, count);

      // A resumed shard did not redo its checkpointed items: no execution of an item happened in
      // an epoch after the one whose checkpoint committed it.
      const committed = committedEpochs(store, status.runId);
      const execs = parseLines<ExecLine>(readFileSync(log, "utf8"));
      const redoneAfterCommit = execs.filter((e) => e.epoch > committed.get(e.key)!);
      expect(redoneAfterCommit).toEqual([]);
      // Kills do cost some redone work, and the log sees every execution.
      expect(execs.length).toBeGreaterThanOrEqual(count);
      expect(new Set(execs.map((e) => e.key)).size).toBe(count);
    });
  }

  it("finishes every item exactly once although tasks time out every 2 s", async () => {
    // summarize-docs did this until the worker got fast enough to finish its 272 documents within
    // one 2 s attempt. 320 items of 100 ms on 2 tasks of 4 at a time are 4 s of work: no attempt
    // can finish it, so tasks do time out and are retried (checked below, not assumed).
    const dir = tempDir();
    const log = join(dir, "executions.jsonl");
    const count = 320;
    const r = await cli(
      ["run", SLEEPY, "--local", "--tasks", "2", "--shards", "8", "--task-timeout", "2", "--max-retries", "10", "--json", "--arg", `count=${count}`, "--arg", "sleepMs=100", "--arg", `log=${log}`],
      dir,
    );
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: { total: number; succeeded: number } };
    expect(status.state).toBe("succeeded");
    expect(status.items.succeeded).toBe(count);
    const tasks = executionFiles(join(dir, ".shardrun")).flatMap((e) => e.tasks);
    expect(tasks.some((t) => t.attempts > 1)).toBe(true);
    assertExactlyOnce((await cli(["output", status.runId], dir)).stdout, count);
    // Nothing committed ran again in a later attempt's epoch.
    const committed = committedEpochs(join(dir, ".shardrun"), status.runId);
    const execs = parseLines<ExecLine>(readFileSync(log, "utf8"));
    expect(execs.filter((e) => e.epoch > committed.get(e.key)!)).toEqual([]);
  });

  it("launches again for what is left when tasks exhaust their retries", async () => {
    const dir = tempDir();
    const log = join(dir, "executions.jsonl");
    const r = await cli(
      ["run", SLEEPY, "--local", "--tasks", "2", "--task-timeout", "2", "--max-retries", "0", "--max-launches", "30", "--json", "--arg", "count=120", "--arg", "sleepMs=250", "--arg", `log=${log}`],
      dir,
    );
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as { runId: string; launches: { state: string }[] };
    // 120 items of 250 ms on 2 tasks of 4 at a time is about 4 s of work: no 2 s attempt can
    // finish it, and without retries every timed-out task ends its launch.
    expect(status.launches.length).toBeGreaterThan(1);
    assertExactlyOnce((await cli(["output", status.runId], dir)).stdout, 120);
    const committed = committedEpochs(join(dir, ".shardrun"), status.runId);
    const execs = parseLines<ExecLine>(readFileSync(log, "utf8"));
    expect(execs.filter((e) => e.epoch > committed.get(e.key)!)).toEqual([]);
  });
});
