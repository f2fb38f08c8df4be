/**
 * Planning speed and memory: `planRun` over the sleepy job's no-op items, 100k and 1M of them, on
 * the fs store in a temp folder. Each case runs in a child process of its own so that its peak
 * RSS is its own. Prints items/s, peak RSS, objects written and run.json's size, and the same
 * plans over the fs store slowed down to Cloud Storage's write latency (see `gcsLike`), which is
 * where bounded parallel writes matter.
 *
 *   node dist/bench/plan.js [items ...]                (default: 100000 1000000)
 *   PLAN_MODULE=/abs/plan.mjs node dist/bench/plan.js  (another planner with the same planRun
 *                                                       signature, e.g. main's, for a before/after)
 *
 * Nothing here passes or fails on time; a case fails only when the plan does not hold every item.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Job } from "../src/core/job.js";
import { FsObjectStore } from "../src/store/fs.js";
import type { ObjectStore } from "../src/store/port.js";
import sleepy from "../test/fixtures/jobs/sleepy.js";

interface CaseResult {
  label: string;
  items: number;
  shards: number;
  ms: number;
  itemsPerSec: number;
  peakRssMb: number;
  objects: number;
  megabytes: number;
  runJsonBytes: number;
}

interface CaseSpec {
  label: string;
  items: number;
  order: "source" | "heaviest-first";
  /** Cloud Storage-like latency on every write (see gcsLike). */
  gcs: boolean;
}

/**
 * Cloud Storage's write latency as the fs store cannot show it: every put waits 30 ms plus its
 * size at 50 MB/s (one stream's upload rate from a Cloud Run instance, roughly) before it
 * starts. Writes in flight overlap, as they do against a bucket; the planner bounds them.
 */
function gcsLike(store: ObjectStore): ObjectStore {
  return {
    url: store.url,
    limits: store.limits,
    get: (key, ...rest) => (store.get as (k: string, ...r: unknown[]) => ReturnType<ObjectStore["get"]>)(key, ...rest),
    list: (prefix, options) => store.list(prefix, options),
    delete: (key, options) => store.delete(key, options),
    async put(key, bytes, options) {
      const size = typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.byteLength;
      await new Promise((r) => setTimeout(r, 30 + size / 50_000));
      return store.put(key, bytes, options);
    },
  };
}

function counting(store: ObjectStore): { store: ObjectStore; writes: () => { objects: number; bytes: number; runJson: number } } {
  let objects = 0;
  let bytes = 0;
  let runJson = 0;
  return {
    writes: () => ({ objects, bytes, runJson }),
    store: {
      url: store.url,
      limits: store.limits,
      get: (key, ...rest) => (store.get as (k: string, ...r: unknown[]) => ReturnType<ObjectStore["get"]>)(key, ...rest),
      list: (prefix, options) => store.list(prefix, options),
      delete: (key, options) => store.delete(key, options),
      put(key, body, options) {
        const size = typeof body === "string" ? Buffer.byteLength(body) : body.byteLength;
        objects++;
        bytes += size;
        if (key.endsWith("/run.json")) runJson = size;
        return store.put(key, body, options);
      },
    },
  };
}

type PlanRun = (o: Record<string, unknown>) => Promise<{ plan: { totalItems: number; shardCount?: number; shards?: unknown[] } }>;

async function loadPlanner(): Promise<PlanRun> {
  const path = process.env.PLAN_MODULE;
  const mod = (path ? await import(pathToFileURL(path).href) : await import("../src/orchestrator/plan.js")) as { planRun: PlanRun };
  return mod.planRun;
}

async function runCase(spec: CaseSpec): Promise<CaseResult> {
  const planRun = await loadPlanner();
  const dir = mkdtempSync(join(tmpdir(), "shardrun-bench-plan-"));
  try {
    const fs = new FsObjectStore(dir);
    const { store, writes } = counting(spec.gcs ? gcsLike(fs) : fs);
    const job = (spec.order === "heaviest-first" ? { ...sleepy, order: "heaviest-first", cost: (i: { ms: number }) => i.ms } : sleepy) as Job;
    const t0 = performance.now();
    const run = await planRun({
      store,
      job,
      module: "dist/test/fixtures/jobs/sleepy.js",
      version: "bench",
      // sigma 1 gives the heaviest-first case lognormal costs to sort; no item ever runs here.
      args: { count: spec.items, sleepMs: spec.order === "heaviest-first" ? 20 : 0, sigma: spec.order === "heaviest-first" ? 1 : 0 },
      policy: { itemsPerShard: 100 },
      settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 3600, maxRetries: 3, maxLaunches: 5 },
      trigger: "bench",
    });
    const ms = performance.now() - t0;
    if (run.plan.totalItems !== spec.items) throw new Error(`planned ${run.plan.totalItems} items, expected ${spec.items}`);
    const w = writes();
    return {
      label: spec.label,
      items: spec.items,
      shards: run.plan.shardCount ?? run.plan.shards?.length ?? 0,
      ms,
      itemsPerSec: spec.items / (ms / 1000),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      objects: w.objects,
      megabytes: w.bytes / 1e6,
      runJsonBytes: w.runJson,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function inChild(spec: CaseSpec): Promise<CaseResult> {
  return new Promise((resolve, reject) => {
    const child = fork(process.argv[1]!, ["--case", JSON.stringify(spec)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let result: CaseResult | undefined;
    child.on("message", (m) => (result = m as CaseResult));
    child.on("error", reject);
    child.on("exit", (code) => (result && code === 0 ? resolve(result) : reject(new Error(`case ${spec.label} exited ${code}`))));
  });
}

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => "  " + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(head), "  " + widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n") + "\n";
}

async function main(): Promise<void> {
  const at = process.argv.indexOf("--case");
  if (at >= 0) {
    const result = await runCase(JSON.parse(process.argv[at + 1]!) as CaseSpec);
    process.send!(result);
    return;
  }
  const sizes = process.argv.slice(2).map(Number);
  for (const n of sizes) if (!Number.isInteger(n) || n < 1) throw new TypeError(`Expected item counts (whole numbers from 1), got ${process.argv.slice(2).join(" ")}`);
  const counts = sizes.length ? sizes : [100_000, 1_000_000];
  const specs: CaseSpec[] = [];
  for (const items of counts) specs.push({ label: `${items} source order`, items, order: "source", gcs: false });
  for (const items of counts) specs.push({ label: `${items} heaviest-first`, items, order: "heaviest-first", gcs: false });
  for (const items of counts) specs.push({ label: `${items} gcs-like writes`, items, order: "source", gcs: true });
  process.stdout.write(`plan bench: ${process.env.PLAN_MODULE ?? "this branch's planner"}; ${cpus().length} cores, node ${process.version}\n`);
  const rows: (string | number)[][] = [];
  const results: CaseResult[] = [];
  for (const spec of specs) {
    // One at a time: two cores, and each figure assumes the machine to itself.
    const r = await inChild(spec).catch((e: unknown) => {
      process.stdout.write(`  ${spec.label}: FAILED (${e instanceof Error ? e.message : String(e)})\n`);
      return undefined;
    });
    if (!r) continue;
    results.push(r);
    rows.push([r.label, r.shards, (r.ms / 1000).toFixed(2), Math.round(r.itemsPerSec), r.peakRssMb.toFixed(0), r.objects, r.megabytes.toFixed(1), r.runJsonBytes]);
  }
  process.stdout.write(table(["case", "shards", "seconds", "items/s", "peak RSS MB", "objects", "MB written", "run.json bytes"], rows));
  process.stdout.write(JSON.stringify({ plan: results }) + "\n");
}

main().catch((e: unknown) => {
  process.stderr.write(`plan bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
