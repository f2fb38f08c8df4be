/**
 * Reruns (DESIGN.md protocol 5). A plain rerun launches the shards that are not done. A rerun of
 * failed items re-plans exactly the items that failed into new shards (a new round), appended to
 * the run; earlier rounds stay as they were, and status lets the newer round speak for an item.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { pacedWriteGapMs } from "../core/cadence.js";
import { PreconditionFailed, ShardrunError, UsageError } from "../core/errors.js";
import { MAX_SHARDS, SHARD_ID_PATTERN, shardId, shardNumber } from "../core/ids.js";
import { encodeItemsObject, itemLineAt, lineStarts, type ShardBody } from "../core/items.js";
import { keys } from "../core/keys.js";
import type { ItemsHeader, PlanRound, RunRecord } from "../core/model.js";
import { createShardCutter, packChunks, type Cut } from "../core/plan.js";
import { getJson, putJson } from "../store/json.js";
import { roundEntries } from "./plan.js";
import { readShard, readShardEntries } from "./plan-read.js";
import { removeKeys } from "./plan-write.js";
import type { ObjectStore } from "../store/port.js";
import { readLaunches, readRun } from "./read.js";
import { putRunRecord } from "./run-record.js";

/** Refuses to rerun while a launch of the run is still live. */
export async function assertNotLive(store: ObjectStore, runId: string): Promise<void> {
  const live = (await readLaunches(store, runId)).find((l) => l.value.state === "pending" || l.value.state === "running");
  if (live) throw new UsageError(`run ${runId} has a live launch (${live.value.execution ?? `#${live.value.n}`}): wait for it or cancel it first`);
}

/** A failed item to run again, as status lists it (the caller picks them, e.g. by reason). */
export interface FailedItemRef {
  /** Run-wide item index. */
  i: number;
  key: string;
  /** The shard that failed it (`s000012`). */
  shard: string;
  reason: string;
}

/** A new round of re-planned items, as run.json now records it, and its shard ids. */
export interface Replanned {
  round: PlanRound;
  shards: string[];
}

/** Another rerun is re-planning the same run, or already re-planned these items. */
export class ReplanConflict extends ShardrunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("PRECONDITION_FAILED", message, options);
  }
}

export interface ReplanOptions {
  /** A lock older than this belongs to a rerun that died: it is taken over. @default 60_000 */
  lockTtlMs?: number;
  /** How long to wait for another rerun's lock before giving up with ReplanConflict. @default 15_000 */
  waitMs?: number;
  now?: () => number;
}

const ReplanLock = z.object({ token: z.string(), at: z.number() });

/**
 * Re-plans failed items into a new round: reads them back from their shards' items objects
 * (range reads), writes new items objects and `plan/<round>.jsonl`, and commits by
 * compare-and-swap on run.json (the round is appended, `shardCount` and `itemChunks` grow).
 *
 * One rerun re-plans a run at a time (a create-only lock object, taken over when older than
 * `lockTtlMs`): the new round's object keys follow from run.json, so two reruns at once would
 * otherwise write the same keys. The loser waits for the lock, then drops the items the winner
 * already re-planned (a later round holds them) and plans the rest, or, with none left, throws
 * ReplanConflict. Items are never planned twice.
 * @returns null when `failed` is empty
 */
export async function planFailedItems(store: ObjectStore, runId: string, failed: readonly FailedItemRef[], o: ReplanOptions = {}): Promise<Replanned | null> {
  if (!failed.length) return null;
  const lock = await takeReplanLock(store, runId, o);
  const written: string[] = [];
  let committed = false;
  try {
    for (let tries = 0; ; tries++) {
      const run = await readRun(store, runId);
      const todo = await notYetReplanned(store, run.value, failed);
      if (!todo.length) throw new ReplanConflict(`run ${runId}: its failed items were re-planned by another rerun meanwhile; nothing left to re-plan`);
      const plan = await writeRound(store, run.value, todo, written);
      await lock.check();
      const next: RunRecord = {
        ...run.value,
        state: "running",
        plan: {
          ...run.value.plan,
          shardCount: run.value.plan.shardCount + plan.round.shards,
          rounds: [...run.value.plan.rounds, plan.round],
          itemChunks: [...run.value.plan.itemChunks, ...plan.chunks],
        },
      };
      delete next.finishedAt;
      try {
        await putRunRecord(store, run, next);
        committed = true;
        return { round: plan.round, shards: plan.shards };
      } catch (e) {
        // run.json moved on (a driver's state change): plan again from it, over our own objects.
        if (!(e instanceof PreconditionFailed) || tries >= 4) throw e;
        await removeKeys(store, written.splice(0));
      }
    }
  } finally {
    if (!committed) await removeKeys(store, written);
    await lock.release();
  }
}

/** Failed items whose index no later round than their shard's holds yet. */
async function notYetReplanned(store: ObjectStore, run: RunRecord, failed: readonly FailedItemRef[]): Promise<FailedItemRef[]> {
  const roundOf = (shard: number) => {
    for (let r = run.plan.rounds.length - 1; r >= 0; r--) if (shard >= run.plan.rounds[r]!.firstShard) return run.plan.rounds[r]!.round;
    return 0;
  };
  let oldest = Number.POSITIVE_INFINITY;
  for (const f of failed) {
    if (!SHARD_ID_PATTERN.test(f.shard) || shardNumber(f.shard) >= run.plan.shardCount) {
      throw new UsageError(`run ${run.runId} has no shard ${f.shard} (failed item ${f.key})`);
    }
    oldest = Math.min(oldest, roundOf(shardNumber(f.shard)));
  }
  const later = run.plan.rounds.filter((r) => r.round > oldest);
  if (!later.length) return [...failed];
  // Index → the latest round that re-planned it, for the failed items only.
  const wanted = new Set(failed.map((f) => f.i));
  const replannedIn = new Map<number, number>();
  for (const r of later) {
    for await (const entry of readShardEntries(store, run, r.round)) {
      for (const [a, b] of entry.indices) for (let i = a; i < b; i++) if (wanted.has(i)) replannedIn.set(i, r.round);
    }
  }
  return failed.filter((f) => (replannedIn.get(f.i) ?? -1) <= roundOf(shardNumber(f.shard)));
}

/** Writes the new round's items objects and entries; the keys it writes go into `written`. */
async function writeRound(
  store: ObjectStore,
  run: RunRecord,
  todo: readonly FailedItemRef[],
  written: string[],
): Promise<{ round: PlanRound; shards: string[]; chunks: number[] }> {
  // Each failed item's line, copied as it was planned (bytes, not re-serialized).
  const byShard = new Map<number, Set<number>>();
  for (const f of todo) {
    const s = shardNumber(f.shard);
    byShard.set(s, (byShard.get(s) ?? new Set()).add(f.i));
  }
  const found: { i: number; line: Uint8Array }[] = [];
  const headers = new Map<string, { header: ItemsHeader; bodyStart: number }>();
  for (const shard of [...byShard.keys()].sort((a, b) => a - b)) {
    const wanted = byShard.get(shard)!;
    const items = await readShard(store, run, shard, headers);
    const starts = lineStarts(items.bytes);
    for (let pos = 0; pos < starts.length - 1; pos++) {
      const line = itemLineAt(items.bytes, starts, pos, items.object);
      if (!wanted.delete(line.i)) continue;
      found.push({ i: line.i, line: items.bytes.slice(starts[pos], starts[pos + 1]) });
    }
    if (wanted.size) throw new UsageError(`run ${run.runId}: shard ${shardId(shard)} holds no item ${[...wanted][0]} (a failed item it named)`);
  }
  // In source order, unless the plan runs heaviest first (then as the shards held them: heaviest first).
  if (run.plan.order !== "heaviest-first") found.sort((a, b) => a.i - b.i);

  const policy = run.plan.policy;
  const cutter = createShardCutter("weightPerShard" in policy ? { itemsPerShard: Math.max(1, Math.ceil(found.length / 4)) } : policy, {
    items: found.length,
    weight: found.length,
  });
  const ends: number[] = [];
  for (let p = 0; p < found.length; p++) if (cutter.add(1)) ends.push(p + 1);
  if (ends[ends.length - 1] !== found.length) ends.push(found.length);
  const firstShard = run.plan.shardCount;
  if (firstShard + ends.length > MAX_SHARDS) throw new UsageError(`run ${run.runId} would have more than ${MAX_SHARDS} shards`);
  const cut: Cut = { ends: Uint32Array.from(ends), weights: Float64Array.from(ends, (e, s) => e - (s ? ends[s - 1]! : 0)) };
  const bodies: ShardBody[] = [];
  let p = 0;
  for (const [s, end] of ends.entries()) {
    const lines = found.slice(p, end).map((f) => f.line);
    const bytes = new Uint8Array(lines.reduce((n, l) => n + l.byteLength, 0));
    let at = 0;
    for (const l of lines) {
      bytes.set(l, at);
      at += l.byteLength;
    }
    bodies.push({ shard: firstShard + s, bytes, count: end - p });
    p = end;
  }
  const spans = packChunks(bodies.map((b) => b.bytes.byteLength), firstShard);
  for (const span of spans) {
    await putOverOrphan(store, keys.items(run.runId, span.first), encodeItemsObject(bodies.slice(span.first - firstShard, span.end - firstShard)), written);
  }
  const round = Math.max(...run.plan.rounds.map((r) => r.round)) + 1;
  await putOverOrphan(store, keys.planRound(run.runId, round), roundEntries(cut, round, firstShard, found.map((f) => f.i)), written);
  return {
    round: { round, firstShard, shards: ends.length, items: found.length, superseded: found.length },
    shards: ends.map((_, s) => shardId(firstShard + s)),
    chunks: spans.map((s) => s.first),
  };
}

/**
 * A create-only write of a key no committed plan names. An object already there was left by a
 * rerun that died holding the lock: it is removed first.
 */
async function putOverOrphan(store: ObjectStore, key: string, bytes: Uint8Array, written: string[]): Promise<void> {
  for (let tries = 0; ; tries++) {
    written.push(key);
    try {
      await store.put(key, bytes, { ifGenerationMatch: 0, contentType: "application/x-ndjson" });
      return;
    } catch (e) {
      if (!(e instanceof PreconditionFailed) || tries > 0) throw e;
      written.pop();
      const orphan = await store.get(key);
      if (orphan) await store.delete(key, { ifGenerationMatch: orphan.generation });
    }
  }
}

/** The run's re-plan lock, held until `release`. */
async function takeReplanLock(store: ObjectStore, runId: string, o: ReplanOptions): Promise<{ check(): Promise<void>; release(): Promise<void> }> {
  const now = o.now ?? Date.now;
  const ttl = o.lockTtlMs ?? 60_000;
  const deadline = now() + (o.waitMs ?? 15_000);
  const key = keys.replanLock(runId);
  const token = randomBytes(8).toString("hex");
  for (;;) {
    try {
      const generation = await putJson(store, key, { token, at: now() }, { ifGenerationMatch: 0 });
      const takenAt = Date.now();
      return {
        async check() {
          const held = await store.get(key);
          if (held?.generation !== generation) throw new ReplanConflict(`run ${runId}: another rerun took over the re-planning (this one was too slow); try again`);
        },
        async release() {
          // Not within a second of its creation, on a store that takes one write a second per object.
          const wait = takenAt + pacedWriteGapMs(store.limits) - Date.now();
          if (wait > 0) await sleep(wait);
          await store.delete(key, { ifGenerationMatch: generation }).catch(() => undefined);
        },
      };
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
    const held = await getJson(store, key, ReplanLock).catch(() => null);
    if (!held || now() - held.value.at > ttl) {
      // Gone meanwhile, unreadable, or left by a rerun that died: take it over.
      const obj = await store.get(key);
      if (obj) await store.delete(key, { ifGenerationMatch: obj.generation }).catch(() => undefined);
      continue;
    }
    if (now() > deadline) throw new ReplanConflict(`run ${runId}: another rerun is re-planning its failed items now; try again in a moment`);
    await sleep(200);
  }
}

/**
 * A rerun runs the job's code as it is now. When that code differs from what the run was planned
 * with, finished and unfinished items would come from two versions: refuse unless `upgrade`, and
 * with it record the new version on the run.
 */
export async function checkVersion(store: ObjectStore, runId: string, currentVersion: string, upgrade: boolean): Promise<{ from: string; to: string } | null> {
  const run = await readRun(store, runId);
  const recorded = run.value.job.version;
  if (recorded === currentVersion) return null;
  if (!upgrade) {
    throw new UsageError(
      `run ${runId} was planned with job version ${recorded}, but the job is now ${currentVersion}: rerun with --upgrade to finish it with the new code`,
    );
  }
  const next: RunRecord = { ...run.value, job: { ...run.value.job, version: currentVersion } };
  await putRunRecord(store, run, next);
  return { from: recorded, to: currentVersion };
}
