/**
 * The bench's batch job: items that sleep a lognormal time (bench/jobs/durations.ts), planned
 * heaviest first by that duration, as a job whose cost predicts its items' time would declare.
 */
import { defineJob } from "../../src/index.js";
import { BenchArgs, BenchItem, benchItems, logExecution, sleepFor } from "./durations.js";

export default defineJob({
  name: "bench-lognormal",
  description: "items that sleep a seeded lognormal time, heaviest first; for the benches",
  args: BenchArgs,
  item: BenchItem,
  source: (args) => benchItems(args),
  key: (item) => `item-${item.n}`,
  order: "heaviest-first",
  cost: (item) => item.ms,
  async run(item, ctx) {
    logExecution(ctx.args.log as string | undefined, ctx.itemKey);
    await sleepFor(item.ms, ctx.signal);
    return { n: item.n };
  },
});
