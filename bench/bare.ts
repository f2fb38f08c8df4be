/**
 * The bare loop the benches compare shardrun with, as a process of its own: the no-op bench
 * job's items from its source, each parsed with the job's schema, run with a context, its output
 * line serialized and written to a file in batches — what a task does per item, without the
 * store, leases or processes around it.
 *
 *   node dist/bench/bare.js <count> <out.jsonl>     prints {"items":…, "ms":…} (ms: this loop)
 *
 * Spawn to exit of this process is the bare loop's wall time: a fresh node process, like a task.
 */
import { open } from "node:fs/promises";
import { silentLogger } from "../src/core/log.js";
import { createTestContext } from "../src/index.js";
import noop from "./jobs/noop.js";

export async function bareLoop(count: number, file: string): Promise<number> {
  const t0 = performance.now();
  if (!noop.args) throw new Error("the no-op job lost its args schema");
  const args = noop.args.parse({ count });
  const out = await open(file, "w");
  const signal = new AbortController().signal;
  const base = createTestContext({ signal, log: silentLogger, runId: "bare", shard: "bare", args });
  let buf: string[] = [];
  let i = 0;
  for await (const raw of noop.source(args, { signal })) {
    const item = noop.item.parse(raw);
    const key = noop.key ? noop.key(item) : String(i);
    const output = await noop.run(item, { ...base, itemKey: key, itemIndex: i });
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

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"))) {
  const count = Number(process.argv[2]);
  const file = process.argv[3];
  if (!(count >= 0) || !file) {
    process.stderr.write("usage: bare.js <count> <out.jsonl>\n");
    process.exit(2);
  }
  bareLoop(count, file).then((ms) => process.stdout.write(JSON.stringify({ items: count, ms }) + "\n"));
}
