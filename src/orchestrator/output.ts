/**
 * Merged output (DESIGN.md protocol 2): exactly the parts that the checkpoints name, in shard
 * order, each checked against the size and CRC32C its checkpoint recorded before a line of it is
 * given out. Orphan parts are never read, so every succeeded item comes out once, and a damaged
 * part stops the output loudly instead of passing on a broken line.
 */
import pLimit from "p-limit";
import { checkpointProblems } from "../core/checkpoint.js";
import { ShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { Checkpoint, type PartRef, type RunRecord } from "../core/model.js";
import { rangeAdd, rangeCount, rangeIndices, type Range } from "../core/ranges.js";
import { getJson, putJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { crcHex } from "../worker/items.js";
import { listShards, readRun, readShardEntries } from "./read.js";

const decoder = new TextDecoder();

/** An object of the run is not what the checkpoint that names it recorded. */
export class DamagedObject extends ShardrunError {
  readonly object: string;
  constructor(object: string, message: string) {
    super("DAMAGED", message);
    this.object = object;
  }
}

/** The part's bytes if they are whole (size, CRC32C, lines as recorded); throws DamagedObject otherwise. */
export async function readPart(store: ObjectStore, runId: string, shard: string, ref: PartRef): Promise<string[]> {
  const key = keys.part(runId, shard, ref.name);
  const obj = await store.get(key);
  if (!obj) throw new DamagedObject(key, `${key} is missing, but the checkpoint of ${shard} names it (${ref.count} outputs): run \`shardrun verify ${runId}\`, then \`shardrun rerun ${runId} --repair\``);
  if (ref.bytes !== undefined && obj.bytes.length !== ref.bytes) {
    throw new DamagedObject(key, `${key} has ${obj.bytes.length} bytes, but its checkpoint recorded ${ref.bytes} (truncated or replaced): run \`shardrun rerun ${runId} --repair\``);
  }
  if (ref.crc32c !== undefined && crcHex(obj.bytes) !== ref.crc32c) {
    throw new DamagedObject(key, `${key} does not match the CRC32C its checkpoint recorded (${crcHex(obj.bytes)} ≠ ${ref.crc32c}): run \`shardrun rerun ${runId} --repair\``);
  }
  const lines = decoder.decode(obj.bytes).split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length !== ref.count + (ref.failed ?? 0)) {
    throw new DamagedObject(key, `${key} has ${lines.length} lines, but its checkpoint recorded ${ref.count + (ref.failed ?? 0)}`);
  }
  for (let k = 0; k < ref.count; k++) {
    try {
      JSON.parse(lines[k]!);
    } catch {
      throw new DamagedObject(key, `${key} line ${k + 1} is not valid JSON`);
    }
  }
  return lines.slice(0, ref.count);
}

/** Yields JSONL lines `{"i":…,"key":…,"output":…}` without a trailing newline. */
export async function* mergedOutput(store: ObjectStore, runId: string): AsyncGenerator<string> {
  const run = (await readRun(store, runId)).value;
  const { summaries } = await listShards(store, run);
  const limit = pLimit(8);
  // Read ahead a few shards at a time, give lines out in shard order.
  const pending = summaries.map((s) =>
    limit(async () => {
      const cp = await getJson(store, keys.checkpoint(runId, s.id), Checkpoint);
      return { shard: s.id, cp: cp?.value ?? null };
    }),
  );
  for (const next of pending) {
    const { shard, cp } = await next;
    for (const part of cp?.parts ?? []) yield* await readPart(store, runId, shard, part);
  }
}

export interface Problem {
  /** The store key of the object at fault. */
  object: string;
  problem: string;
  /** `rerun --repair` can run the items involved again. */
  repairable: boolean;
}

/**
 * Every problem of a run's objects: checkpoints that do not add up, named parts missing or not as
 * recorded, items objects that fail their CRC32C, orphan parts left behind.
 */
export async function verifyRun(store: ObjectStore, runId: string): Promise<Problem[]> {
  const run = (await readRun(store, runId)).value;
  const problems: Problem[] = [];
  const entries = await readShardEntries(store, run).catch((e: unknown) => {
    problems.push({ object: keys.planRound(runId, 0), problem: String(e instanceof Error ? e.message : e), repairable: false });
    return [];
  });
  const count = new Map(entries.map((e) => [e.id, e.count]));
  const { summaries, orphans } = await listShards(store, run, { parts: "all" });
  const limit = pLimit(8);
  await Promise.all(
    summaries.map((s) =>
      limit(async () => {
        const cpKey = keys.checkpoint(runId, s.id);
        let cp: Checkpoint | null;
        try {
          cp = (await getJson(store, cpKey, Checkpoint))?.value ?? null;
        } catch (e) {
          problems.push({ object: cpKey, problem: e instanceof Error ? e.message : String(e), repairable: false });
          return;
        }
        if (!cp) return;
        for (const p of checkpointProblems(cp, count.get(s.id) ?? cp.itemCount)) problems.push({ object: cpKey, problem: p, repairable: false });
        for (const part of cp.parts) {
          try {
            await readPart(store, runId, s.id, part);
          } catch (e) {
            if (!(e instanceof DamagedObject)) throw e;
            problems.push({ object: e.object, problem: e.message, repairable: part.positions !== undefined });
          }
        }
      }),
    ),
  );
  for (const o of orphans) problems.push({ object: o, problem: "an output part no checkpoint names (left by an owner that died or was fenced); it is never read, and the run's finish removes it", repairable: true });
  return problems.sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : 0));
}

/**
 * Takes damaged or missing parts out of their checkpoints, so that exactly their items are not
 * done any more, and rebuilds a checkpoint that does not add up from the parts it names (only what
 * a whole part holds counts as done): the next launch runs the rest again, once. Returns the
 * shards repaired and how many items will run again.
 */
export async function repairRun(store: ObjectStore, runId: string): Promise<{ shards: string[]; items: number }> {
  const run = (await readRun(store, runId)).value;
  const { summaries } = await listShards(store, run);
  const repaired: string[] = [];
  let items = 0;
  for (const s of summaries) {
    for (let tries = 0; tries < 5; tries++) {
      const cur = await getJson(store, keys.checkpoint(runId, s.id), Checkpoint);
      if (!cur) break;
      const bad: PartRef[] = [];
      for (const part of cur.value.parts) {
        try {
          await readPart(store, runId, s.id, part);
        } catch (e) {
          if (!(e instanceof DamagedObject)) throw e;
          if (!part.positions) throw new DamagedObject(e.object, `${e.message}; it records no positions, so it cannot be repaired item by item (rerun the run's shard ${s.id} from scratch)`);
          bad.push(part);
        }
      }
      const damaged = checkpointProblems(cur.value, cur.value.itemCount).length > 0;
      if (!bad.length && !damaged) break;
      const next = damaged ? rebuilt(cur.value, bad) : withoutParts(cur.value, bad);
      try {
        await putJson(store, keys.checkpoint(runId, s.id), next, { ifGenerationMatch: cur.generation });
        repaired.push(s.id);
        items += damaged ? cur.value.itemCount - rangeCount(next.done) - next.failed.length : bad.reduce((n, p) => n + p.count, 0);
        break;
      } catch (e) {
        if (tries >= 4) throw e;
      }
    }
  }
  return { shards: repaired, items };
}

/** A checkpoint rebuilt from the whole parts it names: their positions are done, the rest is open. */
function rebuilt(cp: Checkpoint, bad: readonly PartRef[]): Checkpoint {
  const badNames = new Set(bad.map((p) => p.name));
  const parts = cp.parts.filter((p) => !badNames.has(p.name) && p.positions && rangeCount(p.positions) === p.count && p.positions.every(([a, b]) => b <= cp.itemCount));
  let done: Range[] = [];
  for (const p of parts) done = rangeAdd(done, rangeIndices(p.positions!));
  const failed = cp.failed.filter((f) => f.pos < cp.itemCount && !done.some(([a, b]) => f.pos >= a && f.pos < b)).filter((f, k, all) => all.findIndex((g) => g.pos === f.pos) === k);
  const base: Checkpoint = { ...cp, parts, done: done.map(([a, b]) => [a, b] as [number, number]), failed, leases: [], state: "open" };
  const settled = new Set<number>([...rangeIndices(base.done), ...failed.map((f) => f.pos)]);
  const open = Array.from({ length: cp.itemCount }, (_, p) => p).filter((p) => !settled.has(p));
  let epochSeq = cp.epochSeq;
  const leases: Checkpoint["leases"] = rangeAdd([], open).map(([a, b]) => ({ start: a, end: b, owner: null, epoch: ++epochSeq, heartbeatAt: 0, leaseTtlMs: 0, horizon: a, inflight: [], suspects: [], mode: "checkpoint" as const, namedSeq: 0 }));
  return { ...base, leases, epochSeq, owner: null, state: open.length ? "open" : "done", updatedAt: new Date().toISOString() };
}

function withoutParts(cp: Checkpoint, bad: readonly PartRef[]): Checkpoint {
  const names = new Set(bad.map((p) => p.name));
  const gone = new Set<number>();
  for (const p of bad) for (const i of rangeIndices(p.positions ?? [])) gone.add(i);
  const done: Range[] = [];
  for (const i of rangeIndices(cp.done)) if (!gone.has(i)) done.push([i, i + 1]);
  const merged = rangeAdd(done, []).map(([a, b]) => [a, b] as [number, number]);
  const state = rangeCount(merged) + cp.failed.length >= cp.itemCount ? "done" : "open";
  // The positions taken back become released leases: anyone may take them.
  let epochSeq = cp.epochSeq;
  const released: Checkpoint["leases"] = [];
  for (const [a, b] of rangeAdd([], [...gone].sort((x, y) => x - y))) {
    if (cp.leases.some((l) => l.start < b && a < l.end)) continue;
    released.push({ start: a, end: b, owner: null, epoch: ++epochSeq, heartbeatAt: 0, leaseTtlMs: 0, horizon: a, inflight: [], suspects: [], mode: "checkpoint", namedSeq: 0 });
  }
  const leases = [...cp.leases, ...released].sort((x, y) => x.start - y.start);
  return { ...cp, parts: cp.parts.filter((p) => !names.has(p.name)), done: merged, state, leases, epochSeq, updatedAt: new Date().toISOString() };
}

export type { RunRecord };
