/**
 * Reading a plan back: the ShardEntry lines of its rounds (streamed, for the few readers that
 * need per-shard details), and a shard's items through range reads of its items object.
 */
import { InvalidInputError } from "../core/errors.js";
import { shardId } from "../core/ids.js";
import { readShardItems, type ReadBytes, type ShardItems } from "../core/items.js";
import { keys } from "../core/keys.js";
import { ShardEntry, type ItemsHeader, type RunRecord } from "../core/model.js";
import { formatZodError } from "../core/zod-format.js";
import type { ObjectStore, StoredObject } from "../store/port.js";

type RangedGet = (key: string, options?: { range?: { start: number; end?: number } }) => Promise<StoredObject | null>;

/**
 * The store's range read as core/items.ts takes it. Until every adapter takes `{ range }`
 * (branch `store`), an adapter that ignores it returns the whole object, which the readers of
 * core/items.ts notice and cut themselves.
 */
export function storeReader(store: ObjectStore): ReadBytes {
  const get = store.get.bind(store) as RangedGet;
  return async (key, range) => (await get(key, range ? { range } : undefined))?.bytes ?? null;
}

/** Shard `shard`'s items, verified against their CRC32C (CorruptItemsError otherwise). */
export function readShard(store: ObjectStore, run: RunRecord, shard: number, headers?: Map<string, { header: ItemsHeader; bodyStart: number }>): Promise<ShardItems> {
  if (!Number.isInteger(shard) || shard < 0 || shard >= run.plan.shardCount) {
    throw new RangeError(`Expected a shard number from 0 to ${run.plan.shardCount - 1} of run ${run.runId}, got ${shard}`);
  }
  return readShardItems(storeReader(store), run.runId, run.plan.itemChunks, shard, headers);
}

/**
 * The shards of one round (or of every round, in order), one ShardEntry at a time: a round's
 * object is read whole, but its lines are parsed as they are reached.
 */
export async function* readShardEntries(store: ObjectStore, run: RunRecord, round?: number): AsyncGenerator<ShardEntry> {
  const rounds = round === undefined ? run.plan.rounds : run.plan.rounds.filter((r) => r.round === round);
  if (round !== undefined && !rounds.length) throw new RangeError(`run ${run.runId} has no plan round ${round}`);
  const decoder = new TextDecoder();
  for (const r of rounds) {
    const key = keys.planRound(run.runId, r.round);
    const obj = await store.get(key);
    if (!obj) throw new InvalidInputError(`${key} in ${store.url} is missing: the plan of run ${run.runId} is damaged`);
    const bytes = obj.bytes;
    let at = 0;
    let line = 0;
    let expected = r.firstShard;
    while (at < bytes.byteLength) {
      let end = bytes.indexOf(0x0a, at);
      if (end < 0) end = bytes.byteLength;
      line++;
      if (end > at) {
        let raw: unknown;
        try {
          raw = JSON.parse(decoder.decode(bytes.subarray(at, end)));
        } catch (e) {
          throw new InvalidInputError(`${key} in ${store.url} line ${line}: not valid JSON`, { cause: e });
        }
        const parsed = ShardEntry.safeParse(raw);
        if (!parsed.success) throw new InvalidInputError(`${key} in ${store.url} line ${line}: ${formatZodError(parsed.error)}`);
        if (parsed.data.id !== shardId(expected)) throw new InvalidInputError(`${key} in ${store.url} line ${line}: shard ${parsed.data.id}, expected ${shardId(expected)}`);
        expected++;
        yield parsed.data;
      }
      at = end + 1;
    }
    if (expected !== r.firstShard + r.shards) throw new InvalidInputError(`${key} in ${store.url}: ${expected - r.firstShard} shards, run.json says ${r.shards}`);
  }
}
