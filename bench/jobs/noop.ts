/**
 * The bench's no-op job: the same items as bench-lognormal in source order, doing nothing, so
 * that what a run costs besides the items' own work shows against a bare loop.
 */
import { defineJob } from "../../src/index.js";
import { BenchArgs, BenchItem, benchItems, logExecution, sleepFor } from "./durations.js";

export default defineJob({
  name: "bench-noop",
  description: "no-op items in source order; for the benches",
  args: BenchArgs,
  item: BenchItem,
  source: (args) => benchItems(args),
  key: (item) => `item-${item.n}`,
  async run(item, ctx) {
    logExecution(ctx.args.log as string | undefined, ctx.itemKey);
    await sleepFor(item.ms, ctx.signal);
    return { n: item.n };
  },
});
