/**
 * Kills while a task holds several ranges at once (issue 10): with pipelined claiming a task
 * starts its next shard as soon as the current one has nothing left to start, and thieves split
 * other tasks' ranges, so a SIGKILL lands while several leases of one task are in flight. Every
 * item still comes out exactly once, and no committed item runs again in a later epoch.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keys } from "../../src/core/keys.js";
import { Checkpoint } from "../../src/core/model.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson } from "../../src/store/json.js";
import { SLEEPY, cli, parseLines, prng, runningTaskPids, sleep, startCli, tempDir } from "./helpers.js";

interface ExecLine {
  key: string;
  epoch: number;
  shard: string;
  pid: number;
  at: number;
}

describe("kills with several ranges in flight per task", () => {
  it("every item once, nothing committed runs again, while tasks hold several leases when killed", async () => {
    const dir = tempDir();
    const log = join(dir, "executions.jsonl");
    const doneLog = join(dir, "finished.jsonl");
    const count = 300;
    // Lognormal items in shards of 3: four slots span several shards, and stragglers get split.
    const run = startCli(
      ["run", SLEEPY, "--local", "--tasks", "2", "--items-per-shard", "3", "--max-retries", "10", "--max-launches", "20", "--json", "--arg", `count=${count}`, "--arg", "sleepMs=60", "--arg", "sigma=1", "--arg", `log=${log}`, "--arg", `doneLog=${doneLog}`],
      dir,
    );
    const random = prng(7);
    let kills = 0;
    let finished = false;
    void run.done.then(() => (finished = true));
    while (!finished) {
      await sleep(700 + random() * 900);
      const pids = runningTaskPids(join(dir, ".shardrun"));
      if (!pids.length) continue;
      try {
        process.kill(pids[Math.floor(random() * pids.length)]!, "SIGKILL");
        kills++;
      } catch {
        // ended by itself meanwhile
      }
    }
    const r = await run.done;
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(0);
    expect(kills).toBeGreaterThanOrEqual(2);
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: Record<string, number> };
    expect(status.items).toEqual({ total: count, succeeded: count, failed: 0, pending: 0 });

    const keysOut = parseLines((await cli(["output", status.runId], dir)).stdout).map((l) => l.key);
    expect(keysOut).toHaveLength(count);
    expect(new Set(keysOut).size).toBe(count);

    // Which epoch committed each item, from the final checkpoints and the parts they name.
    const store = new FsObjectStore(join(dir, ".shardrun"));
    const committed = new Map<string, { shard: string; epoch: number }>();
    for (let n = 0; n < count / 3; n++) {
      const shard = `s${String(n).padStart(6, "0")}`;
      const cp = (await getJson(store, keys.checkpoint(status.runId, shard), Checkpoint))!.value;
      expect(cp.state).toBe("done");
      for (const part of cp.parts) {
        const epoch = Number(part.name.split("-")[0]);
        const body = new TextDecoder().decode((await store.get(keys.part(status.runId, shard, part.name)))!.bytes);
        for (const l of parseLines(body).slice(0, part.count)) committed.set(l.key, { shard, epoch });
      }
    }
    const execs = parseLines<ExecLine>(readFileSync(log, "utf8"));
    // An epoch is unique within a shard: an execution after the commit would carry a later one.
    expect(execs.filter((e) => e.shard === committed.get(e.key)!.shard && e.epoch > committed.get(e.key)!.epoch)).toEqual([]);
    // Tasks did hold several shards at once: a process started an item of shard B while an item of
    // shard A it had started earlier was still running.
    const ends = new Map(parseLines<{ key: string; pid: number; at: number }>(readFileSync(doneLog, "utf8")).map((d) => [`${d.pid}/${d.key}`, d.at]));
    const spans = execs.flatMap((e) => (ends.has(`${e.pid}/${e.key}`) ? [{ ...e, end: ends.get(`${e.pid}/${e.key}`)! }] : []));
    const overlapping = spans.some((a) => spans.some((b) => b.pid === a.pid && b.shard !== a.shard && a.at < b.at && b.at < a.end));
    expect(overlapping).toBe(true);
  });
});
