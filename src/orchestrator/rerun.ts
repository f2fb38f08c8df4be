/**
 * Reruns (DESIGN.md protocol 5). A plain rerun launches the shards that are not done. A rerun of
 * failed items re-plans exactly the items that failed into new shards (a new round), appended to
 * the run; earlier rounds stay as they were, and status lets the newer round speak for an item.
 */
import { PreconditionFailed, UsageError } from "../core/errors.js";
import { shardId } from "../core/ids.js";
import { keys } from "../core/keys.js";
import { ItemLine, type RunRecord, type ShardEntry } from "../core/model.js";
import { createShardCutter } from "../core/plan.js";
import { failedItems } from "../core/status.js";
import type { Budget } from "../core/budget.js";
import { parseJsonl } from "../store/json.js";
import { mergeRunBudget } from "./plan.js";
import type { ObjectStore } from "../store/port.js";
import { readCheckpoints, readLaunches, readRun } from "./read.js";
import { putRunRecord } from "./run-record.js";

/** Refuses to rerun while a launch of the run is still live. */
export async function assertNotLive(store: ObjectStore, runId: string): Promise<void> {
  const live = (await readLaunches(store, runId)).find((l) => l.value.state === "pending" || l.value.state === "running");
  if (live) throw new UsageError(`run ${runId} has a live launch (${live.value.execution ?? `#${live.value.n}`}): wait for it or cancel it first`);
}

/** Writes the failed items into new shards and returns their ids (empty when nothing failed). */
export async function planFailedItems(store: ObjectStore, runId: string): Promise<string[]> {
  for (let tries = 0; tries < 5; tries++) {
    const run = await readRun(store, runId);
    const checkpoints = await readCheckpoints(store, run.value);
    const failed = failedItems(run.value, checkpoints);
    if (!failed.length) return [];
    // Read the failed items back from their shards' items.jsonl.
    const byShard = new Map<string, Set<number>>();
    for (const f of failed) byShard.set(f.shard, (byShard.get(f.shard) ?? new Set()).add(f.i));
    const lines: ItemLine[] = [];
    for (const [shard, wanted] of byShard) {
      const obj = await store.get(keys.shardItems(runId, shard));
      if (!obj) throw new Error(`shard ${shard} of run ${runId} has no items.jsonl`);
      for (const l of parseJsonl(obj.bytes, ItemLine, keys.shardItems(runId, shard))) if (wanted.has(l.i)) lines.push(l);
    }
    lines.sort((a, b) => a.i - b.i);
    const round = Math.max(...run.value.plan.shards.map((s) => s.round)) + 1;
    const policy = run.value.plan.policy;
    const cutter = createShardCutter("weightPerShard" in policy ? { itemsPerShard: Math.max(1, Math.ceil(lines.length / 4)) } : policy, {
      items: lines.length,
      weight: lines.length,
    });
    const shards: ShardEntry[] = [];
    let batch: ItemLine[] = [];
    const close = async () => {
      const id = shardId(run.value.plan.shards.length + shards.length);
      await store.put(keys.shardItems(runId, id), batch.map((l) => JSON.stringify(l)).join("\n") + "\n", { ifGenerationMatch: 0 });
      shards.push({ id, round, count: batch.length, weight: batch.length, indices: batch.map((l) => [l.i, l.i + 1] as [number, number]) });
      batch = [];
    };
    try {
      for (const l of lines) {
        batch.push(l);
        if (cutter.add(1)) await close();
      }
      if (batch.length) await close();
      const next: RunRecord = { ...run.value, state: "running", plan: { ...run.value.plan, shards: [...run.value.plan.shards, ...shards] } };
      delete next.finishedAt;
      await putRunRecord(store, run, next);
      return shards.map((s) => s.id);
    } catch (e) {
      // Another rerun got there first: its shards are in run.json now; plan again from there.
      if (e instanceof PreconditionFailed) continue;
      throw e;
    }
  }
  throw new Error(`run ${runId}: could not plan the failed items (run.json keeps changing)`);
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

/** Lays new run-level budget limits over the run's (a rerun that raises the budget). */
export async function setRunBudget(store: ObjectStore, runId: string, budget: Budget): Promise<void> {
  for (let tries = 0; tries < 5; tries++) {
    const run = await readRun(store, runId);
    const next: RunRecord = { ...run.value, settings: { ...run.value.settings, budgets: mergeRunBudget(run.value.settings.budgets, budget) } };
    try {
      await putRunRecord(store, run, next);
      return;
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
  }
  throw new Error(`run ${runId}: could not record the new budget (run.json keeps changing)`);
}
