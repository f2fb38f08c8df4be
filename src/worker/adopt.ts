/**
 * Adoption (DESIGN.md protocol 2 on a store with a per-object write gap): the output parts a lease's
 * owner wrote after its last checkpoint are committed progress. Whoever takes the lease over reads
 * them and names them in the checkpoint it writes, so a kill repeats only the items in flight.
 * A part the new owner does not find (written after it looked) is an orphan: the takeover's write
 * fences the old owner, so no checkpoint will ever name it.
 */
import { crc32c } from "@node-rs/crc32";
import type { AdoptedPart } from "../core/checkpoint.js";
import { keys, unnamedParts } from "../core/keys.js";
import { FailureLine, OutputLine, type FailedItem, type Lease } from "../core/model.js";
import { rangeAdd } from "../core/ranges.js";
import { listAll, type ObjectStore } from "../store/port.js";
import type { ShardItems } from "./items.js";

const decoder = new TextDecoder();

/** Parts of `lease`'s epoch not named yet, in sequence order; a damaged part ends the adoption (its items run again). */
export async function adoptableParts(store: ObjectStore, runId: string, shard: string, lease: Lease, items: ShardItems): Promise<AdoptedPart[]> {
  const { prefix, startOffset } = unnamedParts(runId, shard, lease.epoch, lease.namedSeq);
  const found: { key: string; seq: number }[] = [];
  // Only those above what the checkpoint names: a long lease has many parts behind it.
  for await (const key of listAll(store, prefix, { startOffset })) {
    const m = /-(\d{6})\.jsonl$/.exec(key);
    if (m && Number(m[1]) > lease.namedSeq) found.push({ key, seq: Number(m[1]) });
  }
  found.sort((a, b) => a.seq - b.seq);
  const out: AdoptedPart[] = [];
  for (const { key, seq } of found) {
    // Parts are numbered in order: a gap means a part lost in flight, so later ones are not trusted either.
    if (seq !== lease.namedSeq + out.length + 1) break;
    const obj = await store.get(key);
    if (!obj) break;
    const parsed = parsePart(obj.bytes, items);
    if (!parsed) break;
    const meta = obj.metadata ?? {};
    out.push({
      ref: {
        name: key.slice(keys.partsPrefix(runId, shard).length),
        count: parsed.done.length,
        failed: parsed.failed.length,
        bytes: obj.bytes.length,
        crc32c: crc32c(obj.bytes).toString(16).padStart(8, "0"),
        positions: rangeAdd([], parsed.done).map(([a, b]) => [a, b] as [number, number]),
      },
      done: parsed.done,
      failed: parsed.failed,
      executions: Number(meta.x ?? 0) || 0,
      usage: { tokens: Number(meta.tk ?? 0) || 0, usd: Number(meta.usd ?? 0) || 0 },
      seq,
    });
  }
  return out;
}

function parsePart(bytes: Uint8Array, items: ShardItems): { done: number[]; failed: FailedItem[] } | null {
  const done: number[] = [];
  const failed: FailedItem[] = [];
  for (const line of decoder.decode(bytes).split("\n")) {
    if (!line) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return null;
    }
    const f = FailureLine.safeParse(raw);
    if (f.success && "failed" in (raw as object)) {
      const pos = items.positionOf(f.data.i);
      if (pos < 0) return null;
      failed.push({ pos, i: f.data.i, key: f.data.key, ...f.data.failed });
      continue;
    }
    const o = OutputLine.safeParse(raw);
    if (!o.success) return null;
    const pos = items.positionOf(o.data.i);
    if (pos < 0) return null;
    done.push(pos);
  }
  return { done, failed };
}
