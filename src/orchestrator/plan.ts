/**
 * Planning a run: reads the job's source once, cuts the items into shards as they stream by
 * (only one shard's lines in memory), writes each shard's items.jsonl create-only, and writes
 * run.json last, so that a run.json in the store always means a complete plan.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import pLimit from "p-limit";
import { z } from "zod";
import { InvalidInputError, errorMessage } from "../core/errors.js";
import { MAX_SHARDS, newRunId, shardId } from "../core/ids.js";
import type { Budget, Budgets } from "../core/budget.js";
import { parseTolerance, type Job, type ShardPolicy } from "../core/job.js";
import { keys } from "../core/keys.js";
import type { RunRecord, RunSettings, ShardEntry } from "../core/model.js";
import { createShardCutter, defaultTaskCount, needsTotals } from "../core/plan.js";
import { formatZodError } from "../core/zod-format.js";
import { putJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";

export interface PlanOptions {
  store: ObjectStore;
  job: Job;
  /** Compiled module and code version, as recorded for the tasks. */
  module: string;
  version: string;
  /** Raw run arguments; parsed with the job's `args` schema. */
  args: Record<string, unknown>;
  policy?: ShardPolicy;
  /** Launch settings; `tasks` defaults to one per shard (at most the job's default or 10), `parallelism` to `tasks`. */
  settings: Omit<RunSettings, "concurrency" | "retry" | "checkpoint" | "tasks" | "parallelism" | "budgets"> & {
    tasks?: number;
    parallelism?: number;
    /** Run-level budget limits that override the job's `budgets.run`. */
    runBudget?: Budget;
  };
  trigger: string;
  /**
   * Record the run as being driven from its first launch (state "running", launch limit from
   * launch 0), for a caller that drives it at once: run.json is then written once at the
   * start, not twice within a second.
   * @default false (state "planned": someone starts driving it later)
   */
  driving?: boolean;
  now?: Date;
  runId?: string;
  signal?: AbortSignal;
  onProgress?: (planned: { items: number; shards: number }) => void;
}

interface PlannedItem {
  key: string;
  weight: number;
  item: unknown;
}

export function parseArgs(job: Job, raw: Record<string, unknown>): Record<string, unknown> {
  if (!job.args) {
    if (Object.keys(raw).length) throw new InvalidInputError(`job "${job.name}" takes no arguments, got --arg ${Object.keys(raw)[0]}`);
    return {};
  }
  // A misspelled --arg would otherwise be dropped without a word by a non-strict object schema.
  if (job.args instanceof z.ZodObject) {
    const known = Object.keys(job.args.shape);
    const unknown = Object.keys(raw).filter((k) => !known.includes(k));
    if (unknown.length) {
      throw new InvalidInputError(`job "${job.name}" has no argument ${unknown.map((k) => `"${k}"`).join(", ")}; its arguments: ${known.join(", ") || "none"}`);
    }
  }
  const parsed = job.args.safeParse(raw);
  if (!parsed.success) throw new InvalidInputError(`job "${job.name}" arguments: ${formatZodError(parsed.error, "arg")}`);
  return (parsed.data ?? {}) as Record<string, unknown>;
}

/**
 * Key and weight of an item. An item that fails its schema still gets a place (it fails when a
 * task reaches it), and its key from `key()` when `key()` can read it, so that the dead letter
 * names it as the user knows it.
 */
export function describeItem(job: Job, raw: unknown, index: number): PlannedItem {
  const parsed = job.item.safeParse(raw);
  let key = `#${index}`;
  let weight = 1;
  try {
    if (job.key) {
      const k = job.key((parsed.success ? parsed.data : raw) as never);
      if (typeof k === "string" && k) key = k;
      else if (parsed.success) key = String(k);
    }
    if (parsed.success && job.weight) {
      const w = Number(job.weight(parsed.data));
      weight = Number.isFinite(w) && w >= 0 ? w : 1;
    }
  } catch {
    // key() or weight() threw on an odd item: keep the defaults; run() will judge the item.
  }
  return { key, weight, item: raw };
}

export async function planRun(o: PlanOptions): Promise<RunRecord> {
  const now = o.now ?? new Date();
  const runId = o.runId ?? newRunId(o.job.name, now);
  const args = parseArgs(o.job, o.args);
  const policy = o.policy ?? o.job.shard;
  const signal = o.signal ?? new AbortController().signal;

  let source: AsyncIterable<PlannedItem>;
  let spoolDir: string | undefined;
  let totals: { items: number; weight: number } | undefined;
  if (needsTotals(policy)) {
    // A plan by shard count needs the totals first: spool the items to a temporary file.
    spoolDir = await mkdtemp(join(tmpdir(), "shardrun-plan-"));
    const spool = join(spoolDir, "items.jsonl");
    totals = await spoolItems(o.job, args, spool, signal);
    source = readSpool(spool);
  } else {
    source = describeAll(o.job, args, signal);
  }

  try {
    const cutter = createShardCutter(policy, totals);
    const shards: ShardEntry[] = [];
    const writes = pLimit(8);
    // Shard writes in flight, oldest first.
    const pending: Promise<unknown>[] = [];
    let lines: string[] = [];
    let weight = 0;
    let first = 0;
    let index = 0;
    const close = () => {
      if (shards.length >= MAX_SHARDS) {
        throw new InvalidInputError(`the plan needs more than ${MAX_SHARDS} shards: use fewer, larger ones (--shards or --items-per-shard)`);
      }
      const id = shardId(shards.length);
      const body = lines.join("\n") + "\n";
      shards.push({ id, round: 0, count: lines.length, weight, indices: [[first, first + lines.length]] });
      pending.push(writes(() => o.store.put(keys.shardItems(runId, id), body, { ifGenerationMatch: 0, contentType: "application/x-ndjson" })));
      first += lines.length;
      lines = [];
      weight = 0;
      o.onProgress?.({ items: index, shards: shards.length });
    };
    for await (const p of source) {
      lines.push(JSON.stringify({ i: index, key: p.key, item: p.item }));
      weight += p.weight;
      index++;
      if (cutter.add(p.weight)) close();
      // Keep the shard writes in flight bounded, like the memory.
      if (pending.length > 16) await pending.shift();
    }
    if (lines.length) close();
    await Promise.all(pending);

    const tasks = o.settings.tasks ?? defaultTaskCount(shards.length, o.job.tasks);
    const record: RunRecord = {
      v: 1,
      runId,
      job: { name: o.job.name, module: o.module, version: o.version },
      args,
      trigger: o.trigger,
      createdAt: now.toISOString(),
      updatedAt: new Date().toISOString(),
      ...(o.driving ? { state: "running" as const, launchBase: 0 } : { state: "planned" as const }),
      plan: { policy, totalItems: index, totalWeight: shards.reduce((n, s) => n + s.weight, 0), shards },
      settings: {
        ...withoutRunBudget(o.settings),
        budgets: mergeRunBudget(o.job.budgets, o.settings.runBudget),
        ...(o.settings.maxFailedItems ?? o.job.maxFailedItems !== undefined
          ? { maxFailedItems: o.settings.maxFailedItems ?? parseTolerance(o.job.maxFailedItems!) }
          : {}),
        tasks,
        parallelism: Math.min(o.settings.parallelism ?? tasks, tasks),
        concurrency: o.job.concurrency,
        retry: o.job.retry,
        checkpoint: o.job.checkpoint,
      },
    };
    await putJson(o.store, keys.run(runId), record, { ifGenerationMatch: 0 });
    return record;
  } finally {
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

async function* describeAll(job: Job, args: unknown, signal: AbortSignal): AsyncGenerator<PlannedItem> {
  let i = 0;
  let iterable: AsyncIterable<unknown> | Iterable<unknown>;
  try {
    iterable = job.source(args as never, { signal });
  } catch (e) {
    throw new InvalidInputError(`job "${job.name}" source failed: ${errorMessage(e)}`, { cause: e });
  }
  try {
    for await (const raw of iterable) {
      signal.throwIfAborted();
      yield describeItem(job, raw, i++);
    }
  } catch (e) {
    if (signal.aborted) throw e;
    throw new InvalidInputError(`job "${job.name}" source failed after ${i} items: ${errorMessage(e)}`, { cause: e });
  }
}

async function spoolItems(job: Job, args: unknown, path: string, signal: AbortSignal): Promise<{ items: number; weight: number }> {
  const out = createWriteStream(path);
  let items = 0;
  let weight = 0;
  for await (const p of describeAll(job, args, signal)) {
    items++;
    weight += p.weight;
    if (!out.write(JSON.stringify(p) + "\n")) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return { items, weight };
}

async function* readSpool(path: string): AsyncGenerator<PlannedItem> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of rl) if (line) yield JSON.parse(line) as PlannedItem;
}

function withoutRunBudget<T extends { runBudget?: Budget }>(settings: T): Omit<T, "runBudget"> {
  const { runBudget: _drop, ...rest } = settings;
  return rest;
}

/** The job's budgets with run-level limits given for this run laid over them. */
export function mergeRunBudget(budgets: Budgets, run?: Budget): Budgets {
  if (!run || !Object.keys(run).length) return budgets;
  return { ...budgets, run: { ...budgets.run, ...run } };
}
