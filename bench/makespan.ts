/**
 * (c) Makespan efficiency on a skewed workload. Item durations are lognormal (a few items take
 * many times the mean, as agent items do), so a static split leaves stragglers. Two ways to run
 * the same over-partitioned plan with P tasks at once:
 *   static   one task per shard, --parallelism P: the launcher starts the next task when one ends;
 *   dynamic  --tasks P: each task claims the next unowned shard when it finishes one (protocol 7).
 * Efficiency = ideal ÷ measured wall time, where ideal = max(Σ item time ÷ (P × concurrency),
 * longest item): no schedule on P tasks of `concurrency` slots can beat it.
 */
import { fixed, round, runSleepy, scaled, secs, sleepy, sleepyItems, table, tempStore } from "./lib.js";

const P = 4;
const PER_SHARD = 5;

export interface ModeResult {
  tasks: number;
  /** Wall time of `shardrun run`: the measured makespan. */
  ms: number;
  /** Run created → last checkpoint write (no CLI exit, no poll latency). */
  commitMs: number;
  /** ideal ÷ ms */
  efficiency: number;
}

export interface MakespanResult {
  items: number;
  shards: number;
  parallelism: number;
  concurrency: number;
  sumItemMs: number;
  longestItemMs: number;
  idealMs: number;
  static: ModeResult;
  dynamic: ModeResult;
  /** dynamic efficiency ÷ static efficiency. */
  dynamicOverStatic: number;
}

export async function makespanBench(log: (s: string) => void, fixedCostMs?: number): Promise<MakespanResult> {
  const n = scaled(240);
  const args = { count: n, sleepMs: 100, sigma: 1.2 };
  const items = await sleepyItems(args);
  const concurrency = sleepy.concurrency;
  const sum = items.reduce((s, it) => s + it.ms, 0);
  const longest = Math.max(...items.map((it) => it.ms));
  const ideal = Math.max(sum / (P * concurrency), longest);
  const shards = Math.ceil(n / PER_SHARD);

  const mode = async (label: string, tasks: number) => {
    const r = await runSleepy({ store: tempStore(`makespan-${label}`), args, flags: ["--items-per-shard", String(PER_SHARD), "--tasks", String(tasks), "--parallelism", String(P)] });
    if (r.status.state !== "succeeded") throw new Error(`makespan ${label} run ${r.status.runId} ended ${r.status.state}`);
    if (r.status.shards.total !== shards) throw new Error(`makespan ${label}: expected ${shards} shards, the plan has ${r.status.shards.total}`);
    return { tasks: r.status.launches[0]?.taskCount ?? tasks, ms: r.ms, commitMs: r.commitMs, efficiency: ideal / r.ms };
  };
  const stat = await mode("static", shards);
  const dyn = await mode("dynamic", P);

  const sorted = items.map((it) => it.ms).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  log(`(c) makespan: ${n} items, lognormal sigma 1.2 (mean ${fixed(sum / n, 0)} ms, median ${median} ms, longest ${longest} ms),\n`);
  log(`    ${shards} shards of ${PER_SHARD}, ${P} tasks at once × concurrency ${concurrency}; ideal = max(Σ ${secs(sum)} ÷ ${P * concurrency}, longest) = ${secs(ideal)}\n`);
  log(
    table(
      ["mode", "tasks", "wall", "to last commit", "ideal ÷ wall"],
      [
        ["static (a task per shard)", stat.tasks, secs(stat.ms), secs(stat.commitMs), fixed(stat.efficiency, 3)],
        ["dynamic (claiming)", dyn.tasks, secs(dyn.ms), secs(dyn.commitMs), fixed(dyn.efficiency, 3)],
      ],
    ),
  );
  log(`  dynamic ÷ static efficiency: ${fixed(dyn.efficiency / stat.efficiency, 2)}\n`);
  log("  note: nothing is subtracted; both walls hold these fixed costs:\n");
  log(`        - the run's own: CLI start, planning, supervisor start, 0.5 s status polls${fixedCostMs ? ` (a 1-item run took ${secs(fixedCostMs)} in (a))` : ""};\n`);
  log(`        - a task process start (node, modules, run and launch records) per task: static starts ${shards}, ${P} at a time,\n`);
  log(`          each working one shard; dynamic starts ${P}, once;\n`);
  log("        - one checkpoint is never written twice within 1 s (Cloud Storage's one write per second per object), so a\n");
  log("          shard's last write comes ≥ 1 s after its lease write and a task cannot end sooner than 1 s after it took its\n");
  log(`          last shard: static, with one shard per task, pays it in each of ${Math.ceil(shards / P)} rounds (≥ ${Math.ceil(shards / P)} s); dynamic at least once.\n\n`);

  return {
    items: n,
    shards,
    parallelism: P,
    concurrency,
    sumItemMs: sum,
    longestItemMs: longest,
    idealMs: round(ideal, 0)!,
    static: { ...stat, ms: round(stat.ms, 0)!, efficiency: round(stat.efficiency, 3)! },
    dynamic: { ...dyn, ms: round(dyn.ms, 0)!, efficiency: round(dyn.efficiency, 3)! },
    dynamicOverStatic: round(dyn.efficiency / stat.efficiency, 2)!,
  };
}
