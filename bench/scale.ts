/**
 * `make bench-scale` (issue 11): a run of up to 1,000,000 items on 100, 1,000 and 10,000 tasks,
 * simulated in this one process — the real planner, driver, status and worker code (leases,
 * claims, commits, adoption) against the simulated Cloud Storage (src/store/sim.ts: its
 * latencies, its 429s for a second write of one object within a second and beyond the bucket's
 * ramped capacity, pages of 1,000, prices) and the simulated Cloud Run launcher
 * (src/launcher/sim.ts: task starts, 1% of task attempts killed at random moments and retried).
 * Items sleep on the simulated clock, which runs K times faster than real time; the store's
 * latencies are on the same clock, so every ratio holds as long as the event loop keeps up
 * (printed: its utilisation and its lateness in simulated ms).
 *
 *   node dist/bench/scale.js [100] [1000] [10000] [runs]   (default: 100, 1000 and runs)
 *   SCALE_ITEMS=200000 SCALE_K=5 node dist/bench/scale.js 1000
 *   SCALE_ITEMS=100:20000,1000:100000 SCALE_K=100:10,1000:4 node dist/bench/scale.js 100 1000
 *
 * For each size: store requests per item by pricing class, peak bucket writes a second, the most
 * writes a second to one object, 429s, status latency (p50, p99) while the run is live, makespan ÷
 * ideal, item executions ÷ items, cost per 1M items; then how the per-task and per-poll figures
 * grow with the size. Then `runs` and reconcile over a store of 10,000 runs.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { defineJob, type Job } from "../src/core/job.js";
import { scaledClock, type Clock } from "../src/core/time.js";
import { SimLauncher } from "../src/launcher/sim.js";
import { driveRun } from "../src/orchestrator/drive.js";
import { planRun } from "../src/orchestrator/plan.js";
import { readRun, statusOf } from "../src/orchestrator/read.js";
import { SimBucket, SimObjectStore, type SimStats } from "../src/store/sim.js";
import { BenchArgs, benchItems } from "./jobs/durations.js";
import { ROOT, fixed, round, table } from "./lib.js";
import { countingStore, LoopProbe, outputsPerItem, percentile, total, type Counts } from "./scale-lib.js";
import { runsBench, type RunsResult } from "./scale-runs.js";

const PREFIX = "shardrun";
const CONCURRENCY = 4;
/** Item durations (simulated): lognormal, median 4 s, sigma 0.5, at most 30 s: short agent steps. */
const DURATIONS = { medianMs: 4000, sigma: 0.5, capMs: 30_000 };
const KILL_SHARE = 0.01;
/** Simulated seconds between two status reads while the run is live (as a dashboard would poll). */
const STATUS_EVERY_MS = 5000;

interface Size {
  tasks: number;
  items: number;
  /** Clock speed-up. */
  k: number;
  /** Why the item count is below 1M, when it is. */
  note?: string;
}

/**
 * Sized for this project's two-core machine: the simulation costs about 0.7 ms of CPU per item
 * (measured: 69 s for 100,000 items on 1,000 tasks), so K is set for the event loop to stay
 * under ~65% busy, and the item counts for a size to take minutes: 100 tasks × 20,000 items
 * ~30 s, 1,000 tasks × 100,000 items ~6 min. 10,000 tasks × 1,000,000 items needs K ≈ 0.1
 * (about an hour here), so it runs only when named: `node dist/bench/scale.js 10000`.
 */
const SIZES: (Size & { byDefault: boolean })[] = [
  { tasks: 100, items: 20_000, k: 10, byDefault: true, note: "20,000 items (200 shards of the default 100): 1M items on 400 slots would be 3 simulated hours" },
  { tasks: 1000, items: 100_000, k: 1, byDefault: true, note: "100,000 items (1,000 shards): 1M would be ~2 h of CPU for the simulation here" },
  { tasks: 10_000, items: 1_000_000, k: 0.1, byDefault: false },
];

export interface ScaleResult {
  tasks: number;
  items: number;
  shards: number;
  k: number;
  note?: string;
  idealMs: number;
  makespanMs: number;
  makespanRatio: number;
  executionsPerItem: number;
  missing: number;
  doubled: number;
  kills: number;
  attempts: number;
  plan: { classA: number; classB: number };
  run: { classA: number; classB: number; classAPerItem: number; classBPerItem: number; opsPerItem: number; costUsd: number; costPer1MUsd: number };
  peakWritesPerSecond: number;
  peakObjectWritesPerSecond: number;
  throttled: SimStats["throttled"];
  /** The objects refused for a second change within a second, by kind of object. */
  gapRefusalsByKind: Record<string, number>;
  status: { p50Ms: number; p99Ms: number; samples: number; requestsPerCall: number };
  driver: { polls: number; requestsPerPoll: number };
  tasksView: { checkpointGetsPerAttempt: number; requestsPerAttempt: number };
  /** The tasks' requests per item, by call and kind of object ("put output part": 0.31). */
  tasksPerItemByKind: Record<string, number>;
  loop: { utilisation: number; p99DelaySimMs: number; maxDelaySimMs: number };
  realMs: number;
}

async function runSize(size: Size, log: (s: string) => void): Promise<ScaleResult> {
  const clock: Clock = scaledClock(size.k);
  const bucket = new SimBucket({ clock, seed: size.tasks });
  const open = () => new SimObjectStore({ bucket, prefix: PREFIX });
  const args = BenchArgs.parse({ count: size.items, ...DURATIONS, seed: 11 });
  let sum = 0;
  let longest = 0;
  for (const it of benchItems(args)) {
    sum += it.ms;
    longest = Math.max(longest, it.ms);
  }
  const ideal = Math.max(sum / (size.tasks * CONCURRENCY), longest);
  const executions = new Uint16Array(size.items);
  const job = defineJob({
    name: "scale-sim",
    args: BenchArgs,
    item: z.object({ n: z.number().int(), ms: z.number() }),
    source: (a) => benchItems(a),
    key: (item) => `item-${item.n}`,
    concurrency: CONCURRENCY,
    async run(item, ctx) {
      executions[item.n]!++;
      await clock.sleep(item.ms, ctx.signal);
      return { n: item.n };
    },
  }) as unknown as Job;

  const realStart = performance.now();
  const planned = await planRun({
    store: open(),
    job,
    module: "bench/scale",
    version: "0",
    args: { count: size.items, ...DURATIONS, seed: 11 },
    // Cloud Run's task timeout at most (24 h): a task never stops for its deadline here.
    settings: { tasks: size.tasks, leaseTtlMs: 30_000, taskTimeoutSeconds: 86_400, maxRetries: 3, maxLaunches: 5 },
    trigger: "bench",
    driving: true,
    now: new Date(clock.now()),
  });
  const planStats = bucket.stats();
  bucket.resetStats();

  const tasksStore = countingStore(open());
  const driverStore = countingStore(open());
  const statusStore = countingStore(open());
  const launcher = new SimLauncher({ store: tasksStore.store, clock, job, killShare: KILL_SHARE, expectedTaskMs: ideal, seed: size.tasks + 1 });
  const loop = new LoopProbe();
  const startedAt = clock.now();

  // Status as a dashboard or `shardrun status` asks for it, from its own process, while live.
  let live = true;
  const latencies: number[] = [];
  const statusRequests: number[] = [];
  const statusLoop = (async () => {
    const run = (await readRun(statusStore.store, planned.runId)).value;
    while (live) {
      await clock.sleep(STATUS_EVERY_MS);
      if (!live) break;
      const before = total(statusStore.counts);
      const t0 = clock.now();
      await statusOf(statusStore.store, run);
      if (!live) break;
      latencies.push(clock.now() - t0);
      statusRequests.push(total(statusStore.counts) - before);
    }
  })();

  let polls = 0;
  let pollRequests = 0;
  let lastPollCount = 0;
  const status = await driveRun({
    store: driverStore.store,
    launcher,
    runId: planned.runId,
    clock,
    attach: true,
    onProgress: () => {
      // Requests between two looks at the live run: what one poll costs.
      const now = total(driverStore.counts);
      if (polls > 0) pollRequests += now - lastPollCount;
      lastPollCount = now;
      polls++;
    },
  });
  live = false;
  await statusLoop;
  const loopStats = loop.stop();
  const stats = bucket.stats();
  const realMs = performance.now() - realStart;

  // Makespan: from the drive's start to the last checkpoint write, on the simulated clock.
  const lastCommit = lastCheckpointAt(bucket, planned.runId);
  const makespan = lastCommit - startedAt;
  const out = outputsPerItem(bucket, PREFIX, planned.runId, size.items);
  let missing = 0;
  let doubled = 0;
  let executed = 0;
  for (let i = 0; i < size.items; i++) {
    if (out.counts[i] === 0) missing++;
    if (out.counts[i]! > 1) doubled++;
    executed += executions[i]!;
  }
  if (status.state !== "succeeded") log(`  (run ended ${status.state}${status.reason ? `: ${status.reason}` : ""})\n`);
  const classA = stats.classA;
  const classB = stats.classB;
  const attempts = launcher.stats.attempts;
  const t = tasksStore.counts;
  return {
    tasks: size.tasks,
    items: size.items,
    shards: planned.plan.shardCount,
    k: size.k,
    ...(size.note ? { note: size.note } : {}),
    idealMs: ideal,
    makespanMs: makespan,
    makespanRatio: makespan / ideal,
    executionsPerItem: executed / size.items,
    missing,
    doubled,
    kills: launcher.stats.kills,
    attempts,
    plan: { classA: planStats.classA, classB: planStats.classB },
    run: {
      classA,
      classB,
      classAPerItem: classA / size.items,
      classBPerItem: classB / size.items,
      opsPerItem: (classA + classB + stats.free) / size.items,
      costUsd: stats.costUsd,
      costPer1MUsd: (stats.costUsd / size.items) * 1e6,
    },
    peakWritesPerSecond: stats.peakWritesPerSecond,
    peakObjectWritesPerSecond: stats.peakObjectWritesPerSecond,
    throttled: stats.throttled,
    gapRefusalsByKind: byKind(bucket.gapRefusals(`${PREFIX}/`)),
    status: {
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      samples: latencies.length,
      requestsPerCall: statusRequests.reduce((a, b) => a + b, 0) / Math.max(1, statusRequests.length),
    },
    driver: { polls, requestsPerPoll: pollRequests / Math.max(1, polls - 1) },
    tasksView: { checkpointGetsPerAttempt: t.checkpointGets / Math.max(1, attempts), requestsPerAttempt: total(t as Counts) / Math.max(1, attempts) },
    tasksPerItemByKind: Object.fromEntries([...t.byKind].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, n / size.items])),
    loop: { utilisation: loopStats.utilisation, p99DelaySimMs: loopStats.p99DelayMs * size.k, maxDelaySimMs: loopStats.maxDelayMs * size.k },
    realMs,
  };
}

/** Counts per kind of object (the last segment of the key, numbers dropped). */
function byKind(counts: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of counts) {
    const kind = name.includes("/out/") ? "output part" : name.includes("/tasks/") ? "task record" : name.includes("/budget/") ? "budget bank" : name.slice(name.lastIndexOf("/") + 1).replace(/\d+/g, "N");
    out[kind] = (out[kind] ?? 0) + n;
  }
  return out;
}

/** The newest `updatedAt` of the run's checkpoints, read from the bucket (no simulated requests). */
function lastCheckpointAt(bucket: SimBucket, runId: string): number {
  const base = `${PREFIX}/runs/${runId}/shards/`;
  let last = 0;
  let after: { name: string; isPrefix: boolean } | undefined;
  for (;;) {
    const page = bucket.listEntries(base, { maxResults: 1000, ...(after ? { after } : {}) });
    for (const e of page.entries) {
      if (!e.object || !e.name.endsWith("/checkpoint.json")) continue;
      last = Math.max(last, e.object.updated);
    }
    const tail = page.entries.at(-1);
    if (!page.more || !tail) break;
    after = { name: tail.name, isPrefix: tail.isPrefix };
  }
  return last;
}

function printSize(r: ScaleResult, log: (s: string) => void): void {
  log(`tasks ${r.tasks}: ${r.items} items in ${r.shards} shards, ${CONCURRENCY} slots a task, K = ${r.k} (${fixed(r.realMs / 1000, 0)} s real)${r.note ? `\n  note: ${r.note}` : ""}\n`);
  log(
    table(
      ["measure", "value", "goal"],
      [
        ["every item exactly once", r.missing || r.doubled ? `NO: ${r.missing} missing, ${r.doubled} more than once` : "yes", "yes"],
        ["task attempts killed / started", `${r.kills} / ${r.attempts}`, "1% of tasks"],
        ["item executions ÷ items", fixed(r.executionsPerItem, 4), "-"],
        ["makespan ÷ ideal", `${fixed(r.makespanRatio, 3)} (${fixed(r.makespanMs / 1000, 1)} s ÷ ${fixed(r.idealMs / 1000, 1)} s)`, "≤ 1.15"],
        ["store requests per item (run)", fixed(r.run.opsPerItem, 4), "≤ 0.1"],
        ["  class A per item / class B per item", `${fixed(r.run.classAPerItem, 4)} / ${fixed(r.run.classBPerItem, 4)}`, "-"],
        ["  planning (class A / B, whole plan)", `${r.plan.classA} / ${r.plan.classB}`, "-"],
        ["store cost per 1M items (run)", `$${fixed(r.run.costPer1MUsd, 2)}`, "-"],
        ["peak bucket writes a second", r.peakWritesPerSecond, "≤ 1000"],
        ["most writes a second to one object", r.peakObjectWritesPerSecond, "≤ 1"],
        ["429s (object gap / bucket writes / bucket reads)", `${r.throttled.objectGap} / ${r.throttled.bucketWrites} / ${r.throttled.bucketReads}`, "0"],
        ["  object-gap 429s by object", Object.entries(r.gapRefusalsByKind).map(([k, n]) => `${k} ${n}`).join(", ") || "-", "-"],
        ["status while live, p50 / p99 (simulated)", `${fixed(r.status.p50Ms, 0)} / ${fixed(r.status.p99Ms, 0)} ms (${r.status.samples} reads)`, "≤ 2000 ms"],
        ["  requests per status", fixed(r.status.requestsPerCall, 1), "O(shards/1000)"],
        ["driver requests per poll", `${fixed(r.driver.requestsPerPoll, 1)} (${r.driver.polls} polls)`, "O(shards/1000)"],
        ["task requests per task attempt (checkpoint reads)", `${fixed(r.tasksView.requestsPerAttempt, 1)} (${fixed(r.tasksView.checkpointGetsPerAttempt, 1)})`, "O(1) claims"],
        [
          "  task requests per item, by object (top 5)",
          Object.entries(r.tasksPerItemByKind)
            .slice(0, 5)
            .map(([k, n]) => `${k} ${fixed(n, 3)}`)
            .join(", ") || "-",
          "-",
        ],
        ["event loop busy / lateness p99 (max), simulated ms", `${fixed(r.loop.utilisation * 100, 0)}% / ${fixed(r.loop.p99DelaySimMs, 0)} (${fixed(r.loop.maxDelaySimMs, 0)})`, "not saturated"],
      ],
    ),
  );
  log("\n");
}

function printGrowth(results: ScaleResult[], log: (s: string) => void): void {
  if (results.length < 2) return;
  log("How the figures grow with the size (per task, per poll, per 1,000 shards):\n");
  log(
    table(
      ["tasks", "shards", "status requests", "per 1k shards", "driver requests/poll", "per 1k shards", "requests/task attempt", "cp reads/attempt", "requests/item"],
      results.map((r) => [
        r.tasks,
        r.shards,
        fixed(r.status.requestsPerCall, 1),
        fixed((r.status.requestsPerCall / r.shards) * 1000, 2),
        fixed(r.driver.requestsPerPoll, 1),
        fixed((r.driver.requestsPerPoll / r.shards) * 1000, 2),
        fixed(r.tasksView.requestsPerAttempt, 1),
        fixed(r.tasksView.checkpointGetsPerAttempt, 2),
        fixed(r.run.opsPerItem, 4),
      ]),
    ),
  );
  log("\n");
}

function verdicts(results: ScaleResult[], runs: RunsResult | null, log: (s: string) => void): boolean {
  const big = results.find((r) => r.tasks === 10_000);
  const lines: [string, boolean | null, string][] = [];
  const all = (f: (r: ScaleResult) => boolean) => (results.length > 0 ? results.every(f) : null);
  lines.push(["10,000 tasks, 1,000,000 items, 1% killed, every item exactly once", big ? big.items >= 1_000_000 && big.missing === 0 && big.doubled === 0 && big.kills > 0 : null, big ? `${big.missing} missing, ${big.doubled} doubled, ${big.kills} kills` : "size not run (about an hour here: node dist/bench/scale.js 10000)"]);
  lines.push(["peak bucket writes ≤ 1,000/s", all((r) => r.peakWritesPerSecond <= 1000), results.map((r) => `${r.tasks}: ${r.peakWritesPerSecond}`).join(", ")]);
  lines.push(["no object written more than once a second", all((r) => r.peakObjectWritesPerSecond <= 1 && r.throttled.objectGap === 0), results.map((r) => `${r.tasks}: ${r.peakObjectWritesPerSecond}/s, ${r.throttled.objectGap} 429s`).join(", ")]);
  lines.push(["status ≤ 2 s while live (p99, simulated)", all((r) => r.status.p99Ms <= 2000), results.map((r) => `${r.tasks}: ${fixed(r.status.p99Ms, 0)} ms`).join(", ")]);
  lines.push(["makespan ≤ 1.15× ideal", all((r) => r.makespanRatio <= 1.15), results.map((r) => `${r.tasks}: ${fixed(r.makespanRatio, 3)}`).join(", ")]);
  lines.push(["≤ 0.1 store operations per item", all((r) => r.run.opsPerItem <= 0.1), results.map((r) => `${r.tasks}: ${fixed(r.run.opsPerItem, 4)} ($${fixed(r.run.costPer1MUsd, 2)}/1M items)`).join(", ")]);
  lines.push(["event loop not the bottleneck", all((r) => r.loop.utilisation < 0.9), results.map((r) => `${r.tasks}: ${fixed(r.loop.utilisation * 100, 0)}%`).join(", ")]);
  if (runs) {
    lines.push(["`runs` over 10,000 runs < 1 s (simulated)", runs.listCliMs < 1000 && runs.listIndexMs < 1000, `CLI listing ${fixed(runs.listCliMs, 0)} ms, index listing ${fixed(runs.listIndexMs, 0)} ms`]);
    lines.push(["reconcile over 10,000 runs < 1 s (simulated)", runs.reconcileMs < 1000, `${fixed(runs.reconcileMs, 0)} ms (${runs.reconcileRequests} requests)`]);
  }
  log("Issue 11's done-when, on the simulated store:\n");
  log(table(["goal", "verdict", "figures"], lines.map(([g, ok, f]) => [g, ok === null ? "n/a" : ok ? "MET" : "NOT MET", f])));
  log("\n");
  return results.every((r) => r.missing === 0 && r.doubled === 0);
}

/**
 * A size's override from the environment: one number for every size, or `tasks:value` pairs
 * separated by commas for some of them.
 */
function overrideFor<T>(name: string, tasks: number, make: (value: number) => T): T | Record<string, never> {
  const raw = process.env[name];
  if (!raw) return {};
  const pairs = raw.includes(":") ? raw.split(",").map((p) => p.split(":").map(Number) as [number, number]) : [[tasks, Number(raw)] as [number, number]];
  for (const [t, v] of pairs) {
    if (!(Number.isFinite(t) && v > 0)) throw new TypeError(`Expected ${name} to be a number above 0 or tasks:value pairs, got "${raw}"`);
  }
  const hit = pairs.find(([t]) => t === tasks);
  return hit ? make(hit[1]) : {};
}

async function main(): Promise<number> {
  const log = (s: string) => process.stdout.write(s);
  const argv = process.argv.slice(2);
  const wanted = argv.filter((a) => /^\d+$/.test(a)).map(Number);
  const runsWanted = argv.length === 0 || argv.includes("runs");
  const sizes = (wanted.length ? SIZES.filter((s) => wanted.includes(s.tasks)) : argv.length ? [] : SIZES.filter((s) => s.byDefault)).map(({ byDefault: _, ...s }) => ({
    ...s,
    ...overrideFor("SCALE_ITEMS", s.tasks, (items) => ({ items, note: `${items} items (SCALE_ITEMS)` })),
    ...overrideFor("SCALE_K", s.tasks, (k) => ({ k })),
  }));
  log(`shardrun bench-scale: simulated Cloud Storage and Cloud Run, ${cpus().length} cores, node ${process.version}\n`);
  log(`items: lognormal median ${DURATIONS.medianMs / 1000} s, sigma ${DURATIONS.sigma}, cap ${DURATIONS.capMs / 1000} s; ${CONCURRENCY} slots a task; ${KILL_SHARE * 100}% of task attempts killed\n\n`);
  const results: ScaleResult[] = [];
  for (const size of sizes) {
    const r = await runSize(size, log);
    printSize(r, log);
    results.push(r);
  }
  printGrowth(results, log);
  const runs = runsWanted ? await runsBench(log) : null;
  const ok = verdicts(results, runs, log);
  const dir = join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "scale.json"), JSON.stringify({ at: new Date().toISOString(), results: results.map((r) => ({ ...r, makespanRatio: round(r.makespanRatio) })), runs }) + "\n");
  log("(every figure: bench/results/scale.json)\n");
  return ok ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`bench-scale: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
