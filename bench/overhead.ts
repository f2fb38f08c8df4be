/**
 * (a) Overhead: no-op items through shardrun (local launcher, fs store) against a bare loop that
 * does the same item work in one process and writes the same JSONL lines to a file. The runs are
 * chosen so that three costs can be told apart by differences between runs:
 *   fixed     a run of one item: CLI start, planning, supervisor and task process starts, polls;
 *   per shard the same items in the job's many small shards vs in two big ones: lease write,
 *             items read, part and checkpoint writes, and any wait on the one-write-per-second
 *             rule for one checkpoint (DESIGN.md protocol 3) that the task does not overlap;
 *   per item  25x the items in the same two shards.
 */
import { open } from "node:fs/promises";
import { join } from "node:path";
import { silentLogger } from "../src/core/log.js";
import { createTestContext } from "../src/index.js";
import { fixed, round, runSleepy, scaled, secs, sleepy, table, tempStore, type RunJson } from "./lib.js";

const TASKS = 2;
const REPS = 2;

/** Same work per item as a shardrun task: plan from the source, parse, run, serialize, write. */
export async function bareLoop(count: number, file: string): Promise<number> {
  const t0 = performance.now();
  if (!sleepy.args) throw new Error("the sleepy job lost its args schema");
  const args = sleepy.args.parse({ count, sleepMs: 0 });
  const out = await open(file, "w");
  const signal = new AbortController().signal;
  let buf: string[] = [];
  let i = 0;
  for await (const raw of sleepy.source(args, { signal })) {
    const item = sleepy.item.parse(raw);
    const key = sleepy.key ? sleepy.key(item) : String(i);
    const output = await sleepy.run(item, createTestContext({ signal, log: silentLogger, itemKey: key, itemIndex: i, runId: "bare", shard: "bare" }));
    buf.push(JSON.stringify({ i, key, output }));
    // Written in batches, as shardrun writes parts, rather than one syscall per line.
    if (buf.length >= 500) {
      await out.write(buf.join("\n") + "\n");
      buf = [];
    }
    i++;
  }
  if (buf.length) await out.write(buf.join("\n") + "\n");
  await out.close();
  return performance.now() - t0;
}

export interface OverheadResult {
  items: number;
  bareMs: number;
  fixedMs: number;
  runs: { label: string; items: number; shards: number; ms: number; commitMs: number | null; itemsPerSec: number; ratio: number }[];
  /** shardrun ÷ bare, `items` items at the job's default sharding, --tasks 2: the headline. */
  ratio: number;
  /** null when the plan gave no more shards than tasks (a tiny BENCH_SCALE). */
  perShardMs: number | null;
  perItemUs: number;
  bareItemUs: number;
}

export async function overheadBench(log: (s: string) => void): Promise<OverheadResult> {
  const n = scaled(2000);
  // Big enough that the per-item cost stands well above the noise of two process starts.
  const big = n * 25;
  const store = tempStore("overhead");

  // The bare loop is cheap: run it twice per size and keep the faster (a warm JIT), as the
  // shardrun tasks, which are fresh processes, never get to. That favours the bare loop.
  const bare = async (count: number) => {
    const first = await bareLoop(count, join(store, `bare-${count}-a.jsonl`));
    return Math.min(first, await bareLoop(count, join(store, `bare-${count}-b.jsonl`)));
  };
  const bareMs = await bare(n);
  const bareBigMs = await bare(big);

  // Each shardrun run is repeated, interleaved, keeping the fastest wall and commit span: on a
  // shared machine, load only ever adds time, so the minimum is the least disturbed figure.
  const args = (count: number) => ({ count, sleepMs: 0 });
  const two = ["--tasks", String(TASKS), "--shards", String(TASKS)];
  const configs = {
    one: { args: args(1), flags: ["--tasks", "1"] },
    // The job's own sharding (10 items per shard), as a user who gives no flag gets it.
    usual: { args: args(n), flags: ["--tasks", String(TASKS)] },
    fewShards: { args: args(n), flags: two },
    bigRun: { args: args(big), flags: two },
  };
  type Best = { ms: number; commitMs: number; status: RunJson };
  const best: Partial<Record<keyof typeof configs, Best>> = {};
  for (let rep = 0; rep < REPS; rep++) {
    for (const [name, c] of Object.entries(configs) as [keyof typeof configs, (typeof configs)["one"]][]) {
      const r = await runSleepy({ store, ...c });
      if (r.status.state !== "succeeded") throw new Error(`overhead run ${r.status.runId} ended ${r.status.state}`);
      const prev = best[name];
      best[name] = prev ? { ms: Math.min(prev.ms, r.ms), commitMs: Math.min(prev.commitMs, r.commitMs), status: r.status } : r;
    }
  }
  const { one, usual, fewShards, bigRun } = best as Record<keyof typeof configs, Best>;

  const row = (label: string, items: number, r: Best | null, ms: number, base: number) => ({
    label,
    items,
    shards: r?.status.shards.total ?? 0,
    ms,
    commitMs: r ? r.commitMs : null,
    itemsPerSec: (items / ms) * 1000,
    ratio: ms / base,
  });
  const runs = [
    row("bare loop", n, null, bareMs, bareMs),
    row("bare loop", big, null, bareBigMs, bareBigMs),
    row("shardrun, 1 item (fixed cost)", 1, one, one.ms, bareMs),
    row("shardrun, job's sharding", n, usual, usual.ms, bareMs),
    row(`shardrun, ${TASKS} shards`, n, fewShards, fewShards.ms, bareMs),
    row(`shardrun, ${TASKS} shards`, big, bigRun, bigRun.ms, bareBigMs),
  ];
  // Differences of runs, on the to-last-commit spans (wall times move in 0.5 s poll steps).
  // Each task works its shards one after another, so extra shards cost (extra ÷ tasks) rounds.
  const extraRounds = (usual.status.shards.total - fewShards.status.shards.total) / TASKS;
  const perShardMs = extraRounds > 0 ? (usual.commitMs - fewShards.commitMs) / extraRounds : NaN;
  // Per item of the run as a user counts it (both tasks work items at the same time).
  const perItemUs = ((bigRun.commitMs - fewShards.commitMs) / (big - n)) * 1000;
  const bareItemUs = ((bareBigMs - bareMs) / (big - n)) * 1000;

  log(`(a) overhead: no-op items (sleepy sleepMs=0), --tasks ${TASKS}, local launcher + fs store; best of ${REPS} per shardrun row\n`);
  log(
    table(
      ["run", "items", "shards", "wall", "to last commit", "items/s", "wall ÷ bare"],
      runs.map((r) => [r.label, r.items, r.shards || "-", secs(r.ms), r.commitMs === null ? "-" : secs(r.commitMs), Math.round(r.itemsPerSec), fixed(r.ratio, 1)]),
    ),
  );
  log(`  headline              shardrun ÷ bare = ${fixed(usual.ms / bareMs, 1)} for ${n} items (job's sharding, ${usual.status.shards.total} shards)\n`);
  log(`  fixed cost            ${secs(one.ms)} per run: CLI start, plan, supervisor and task process starts, 0.5 s status polls\n`);
  log(`  per shard             ${fixed(perShardMs, 1)} ms per shard a task works: lease write, items read, part + checkpoint writes\n`);
  log(`  per item              ${fixed(perItemUs, 1)} µs through shardrun vs ${fixed(bareItemUs, 2)} µs in the bare loop\n`);
  log("  note: wall = spawn of `shardrun run` to its exit; to last commit = run created → last checkpoint write.\n");
  log("        The bare loop runs inside this already-started, warmed-up process: it pays no process start.\n\n");

  return {
    items: n,
    bareMs: round(bareMs, 1)!,
    fixedMs: round(one.ms, 0)!,
    runs: runs.map((r) => ({ ...r, ms: round(r.ms, 1)!, itemsPerSec: round(r.itemsPerSec, 0)!, ratio: round(r.ratio, 1)! })),
    ratio: round(usual.ms / bareMs, 1)!,
    perShardMs: round(perShardMs, 1),
    perItemUs: round(perItemUs, 1)!,
    bareItemUs: round(bareItemUs, 2)!,
  };
}
