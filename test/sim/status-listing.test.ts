/**
 * Status of a live run on the simulated Cloud Storage lists checkpoints only (a page per 1,000
 * shards) plus the few parts committed since each open lease's checkpoint, and still counts what
 * a listing of every part counts: the items finished so far, at every moment the test looks.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineJob, type Job } from "../../src/core/job.js";
import { scaledClock } from "../../src/core/time.js";
import { SimLauncher } from "../../src/launcher/sim.js";
import { driveRun } from "../../src/orchestrator/drive.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { LIVE_PART_LOOKUPS, listShards, readRun } from "../../src/orchestrator/read.js";
import { SimBucket } from "../../src/store/sim-bucket.js";
import { SimObjectStore } from "../../src/store/sim.js";

describe("shard listing of a live run on a bucket with a write gap", () => {
  it("counts live parts like a full listing does, with requests bounded by the open leases", async () => {
    const clock = scaledClock(10);
    const bucket = new SimBucket({ clock, seed: 3 });
    const store = new SimObjectStore({ bucket, prefix: "st" });
    const job = defineJob({
      name: "lister",
      item: z.object({ n: z.number().int() }),
      *source() {
        for (let n = 0; n < 2400; n++) yield { n };
      },
      key: (item) => `item-${item.n}`,
      shard: { itemsPerShard: 300 },
      concurrency: 8,
      async run(item, ctx) {
        await clock.sleep(200 + (item.n % 5) * 40, ctx.signal);
        return { n: item.n };
      },
    }) as unknown as Job;
    const planned = await planRun({
      store,
      job,
      module: "lister",
      version: "test",
      args: {},
      settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 3600, maxRetries: 0, maxLaunches: 1, tasks: 6, parallelism: 6 },
      trigger: "test",
    });
    const run = (await readRun(store, planned.runId)).value;
    const launcher = new SimLauncher({ store, clock, job, seed: 1, startDelayMs: 200 });
    const driving = driveRun({ store, launcher, runId: planned.runId, clock, pollMs: 1000 });
    let finished = false;
    void driving.finally(() => (finished = true));
    const looks: { live: number; all: number; liveRequests: number; allRequests: number }[] = [];
    while (!finished) {
      await clock.sleep(3000);
      if (finished) break;
      // The bucket does not change between two listings of one simulated instant only if nothing
      // lands between them: compare the live count with full listings just before and after.
      const before = await listShards(store, run, { parts: "all" });
      const live = await listShards(store, run);
      const after = await listShards(store, run, { parts: "all" });
      const done = (l: typeof live) => l.summaries.reduce((n, s) => n + s.done, 0);
      expect(live.orphans).toEqual([]);
      expect(done(live)).toBeGreaterThanOrEqual(done(before));
      expect(done(live)).toBeLessThanOrEqual(done(after));
      looks.push({ live: done(live), all: done(after), liveRequests: live.requests, allRequests: after.requests });
    }
    expect((await driving).state).toBe("succeeded");
    expect(looks.length).toBeGreaterThan(3);
    // Live parts were counted: some look saw items done that no checkpoint named yet.
    const mid = looks.filter((l) => l.live > 0 && l.live < 2400);
    expect(mid.length).toBeGreaterThan(0);
    // A live listing: one page of checkpoints and one small listing per open lease (a task holds a
    // few at most), however many parts the shards hold (make bench-scale shows it against parts).
    for (const l of looks) expect(l.liveRequests).toBeLessThanOrEqual(1 + Math.min(3 * 6, LIVE_PART_LOOKUPS));
  }, 120_000);
});
