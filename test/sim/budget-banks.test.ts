/**
 * A spend-limited run of 24 tasks on the simulated Cloud Storage (one write a second per object,
 * as the real bucket allows): the tasks reserve the run budget from shared bank objects, yet no
 * object is written twice within a second, the run stops at its budget within one item's spend
 * per task, and nothing is done twice.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineJob, type Job } from "../../src/core/job.js";
import { scaledClock } from "../../src/core/time.js";
import { SimLauncher } from "../../src/launcher/sim.js";
import { driveRun } from "../../src/orchestrator/drive.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { SimBucket } from "../../src/store/sim-bucket.js";
import { SimObjectStore } from "../../src/store/sim.js";

describe("run budget banks on a bucket that takes one write a second per object", () => {
  it("stop the run near its budget with no object written twice within a second", async () => {
    const clock = scaledClock(10);
    const bucket = new SimBucket({ clock, seed: 11 });
    const store = new SimObjectStore({ bucket, prefix: "runs" });
    const TOKENS_PER_ITEM = 100;
    const executed: number[] = [];
    const job = defineJob({
      name: "spender",
      item: z.object({ n: z.number().int() }),
      *source() {
        for (let n = 0; n < 2000; n++) yield { n };
      },
      key: (item) => `item-${item.n}`,
      shard: { itemsPerShard: 20 },
      concurrency: 4,
      async run(item, ctx) {
        executed.push(item.n);
        await clock.sleep(300 + (item.n % 7) * 50, ctx.signal);
        ctx.usage({ tokens: TOKENS_PER_ITEM });
        return { n: item.n };
      },
    }) as unknown as Job;
    const budget = 60_000; // 600 items' worth of 2,000
    const run = await planRun({
      store,
      job,
      module: "spender",
      version: "test",
      args: {},
      settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 3600, maxRetries: 0, maxLaunches: 1, tasks: 24, parallelism: 24, runBudget: { tokens: budget } },
      trigger: "test",
    });
    const launcher = new SimLauncher({ store, clock, job, seed: 5, startDelayMs: 500 });
    const status = await driveRun({ store, launcher, runId: run.runId, clock, pollMs: 1000 });

    expect(status.state).toBe("budget_exhausted");
    const outputs: number[] = [];
    for await (const line of mergedOutput(store, run.runId)) outputs.push((JSON.parse(line) as { output: { n: number } }).output.n);
    expect(new Set(outputs).size).toBe(outputs.length);
    // Spent: every item that ran, finished or not. Within one item per slot of the budget, and the
    // budget mostly used (the banks did not strand it).
    const spent = executed.length * TOKENS_PER_ITEM;
    expect(spent).toBeLessThanOrEqual(budget + 24 * 4 * TOKENS_PER_ITEM);
    expect(outputs.length * TOKENS_PER_ITEM).toBeGreaterThan(budget * 0.8);
    // The bucket's own count of mutations applied to one object name in any one second.
    const stats = bucket.stats();
    expect(stats.peakObjectWritesPerSecond).toBe(1);
    const banks = [...bucket.writeCounts("runs/runs/").entries()].filter(([k]) => k.includes("/budget/"));
    expect(banks.length).toBeGreaterThan(0);
  }, 120_000);
});
