/**
 * Merged output (DESIGN.md protocol 2): exactly the parts that the final checkpoints name, in
 * shard order. Orphan parts are never read, so every succeeded item comes out once.
 */
import { keys } from "../core/keys.js";
import type { ObjectStore } from "../store/port.js";
import { readCheckpoints, readRun } from "./read.js";

const decoder = new TextDecoder();

/** Yields JSONL lines `{"i":…,"key":…,"output":…}` without a trailing newline. */
export async function* mergedOutput(store: ObjectStore, runId: string): AsyncGenerator<string> {
  const run = (await readRun(store, runId)).value;
  const checkpoints = await readCheckpoints(store, run);
  for (const shard of run.plan.shards) {
    const cp = checkpoints.get(shard.id);
    for (const part of cp?.parts ?? []) {
      const obj = await store.get(keys.part(runId, shard.id, part.name));
      if (!obj) throw new Error(`run ${runId}: shard ${shard.id} names output part ${part.name}, which is missing`);
      for (const line of decoder.decode(obj.bytes).split("\n")) if (line) yield line;
    }
  }
}
