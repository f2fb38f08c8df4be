/**
 * (d) Cloud Storage load: what a run asks of a bucket, measured through the throttle the e2e
 * test uses (test/fakes/gcs-throttle.ts) in front of fake-gcs-server, which enforces Cloud
 * Storage's rate limits: one mutation a second per object name, ~1,000 writes a second per
 * bucket before it ramps up. A run of the sleepy job with its store in the bucket (local tasks:
 * the store traffic is what Cloud Run tasks would send), at the e2e test's size and at ten times
 * that. Prints the bucket's peak writes a second (what must stay well under 1,000), operations
 * by class per item (what the bill counts), and the 429s: "too soon" (a writer wrote one object
 * twice within a second: a defect) and "lost race" (contention that compare-and-swap resolves).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { findFakeGcs, startFakeGcs } from "../test/contract/fault-proxy.js";
import { GcsThrottle, type ThrottleReport } from "../test/fakes/gcs-throttle.js";
import { ROOT, RunJson, SLEEPY, fixed, runCli, scaled, secs, table, tempStore } from "./lib.js";

export interface GcsCase {
  label: string;
  items: number;
  tasks: number;
  ms: number;
  state: string;
  peakBucketWritesPerSecond: number;
  classAPerItem: number;
  classBPerItem: number;
  tooSoon: number;
  lostRace: number;
  hottestObject: string | null;
}

export interface GcsResult {
  cases: GcsCase[];
  /** Why the bench did not run, when it did not. */
  skipped?: string;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((n, v) => n + v, 0);

export async function gcsBench(log: (s: string) => void): Promise<GcsResult> {
  log("(d) Cloud Storage load of a run, through Cloud Storage's rate limits (fake-gcs-server + throttle)\n");
  // Compiled into dist/, the helper cannot find scripts/ beside itself: ask the script from here.
  const pinned = spawnSync("bash", [join(ROOT, "scripts", "fake-gcs.sh"), "path"], { encoding: "utf8" }).stdout?.trim();
  const found = findFakeGcs(pinned ? { ...process.env, FAKE_GCS_SERVER_BIN: pinned } : { ...process.env, FAKE_GCS_SERVER_BIN: "" });
  if (!found.bin) {
    log(`  skipped: ${found.missing}\n\n`);
    return { cases: [], skipped: found.missing };
  }
  const gcs = await startFakeGcs(found.bin);
  const cases: GcsCase[] = [];
  try {
    await gcs.createBucket("shardrun-bench");
    const sizes = [
      { label: "e2e-sized", items: scaled(150), tasks: 3 },
      { label: "10x", items: scaled(1500), tasks: 10 },
    ];
    for (const size of sizes) {
      const throttle = await GcsThrottle.start({ target: gcs.url });
      try {
        const cwd = tempStore("gcs");
        const store = `gs://shardrun-bench/${size.label}`;
        const flags = ["--local", "--store", store, "--json", "--tasks", String(size.tasks), "--arg", `count=${size.items}`, "--arg", "sleepMs=20"];
        const r = await runCli(["run", SLEEPY, ...flags], { cwd, env: { STORAGE_EMULATOR_HOST: throttle.url } });
        if (r.code !== 0) throw new Error(`shardrun run exited ${r.code}\n${r.stderr.slice(-2000)}`);
        const status = RunJson.parse(JSON.parse(r.stdout));
        const t: ThrottleReport = throttle.report();
        cases.push({
          ...size,
          ms: r.ms,
          state: status.state,
          peakBucketWritesPerSecond: t.peakBucketWritesPerSecond,
          classAPerItem: t.classA / size.items,
          classBPerItem: t.classB / size.items,
          tooSoon: sum(t.tooSoon),
          lostRace: sum(t.lostRace),
          hottestObject: t.hottestObject?.replace(/^.*\/runs\/[^/]+\//, "") ?? null,
        });
      } finally {
        await throttle.close();
      }
    }
  } finally {
    await gcs.stop();
  }
  log(
    table(
      ["run", "items", "tasks", "wall", "peak bucket writes/s", "class A/item", "class B/item", "429 too soon", "429 lost race", "hottest object"],
      cases.map((c) => [c.label, c.items, c.tasks, secs(c.ms), c.peakBucketWritesPerSecond, fixed(c.classAPerItem), fixed(c.classBPerItem), c.tooSoon, c.lostRace, c.hottestObject ?? "-"]),
    ),
  );
  log(`  the bucket's limit before it ramps up: ~1000 writes/s; peak here: ${Math.max(0, ...cases.map((c) => c.peakBucketWritesPerSecond))} writes/s\n\n`);
  return { cases };
}

// Run alone: node dist/bench/gcs.js
if (process.argv[1] && join(process.argv[1]) === join(new URL(import.meta.url).pathname)) {
  gcsBench((s) => process.stdout.write(s)).then(
    () => undefined,
    (e: unknown) => {
      process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
