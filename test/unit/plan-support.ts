/** What the plan tests share: temp fs stores, a store that fails on cue, a test job, reading a plan back. */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import { z } from "zod";
import { itemLines } from "../../src/core/items.js";
import { defineJob, type Job } from "../../src/core/job.js";
import type { RunRecord } from "../../src/core/model.js";
import { readShard } from "../../src/orchestrator/plan-read.js";
import type { PlanOptions } from "../../src/orchestrator/plan.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { listAll, type ObjectStore } from "../../src/store/port.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

export function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `shardrun-${label}-`));
  dirs.push(d);
  return d;
}

export function tempStore(): FsObjectStore {
  return new FsObjectStore(tempDir("plan-store"));
}

/** Every live key of a store. */
export async function allKeys(store: ObjectStore, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const k of listAll(store, prefix)) out.push(k);
  return out;
}

export function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Calls to a store, by kind and key, for tests that count requests. */
export interface StoreCalls {
  get: string[];
  put: string[];
  list: string[];
  delete: string[];
}

export interface WrapOptions {
  /** Throw this from the put numbered `failPutAt` (1-based) and every later one. */
  failPutAt?: number;
  failWith?: () => unknown;
  /** Called before each put with its 1-based number. */
  beforePut?: (n: number, key: string) => void | Promise<void>;
}

/** A store that records its calls and can fail its puts from the Nth on (a disk filling up, a network gone). */
export function wrapStore(store: ObjectStore, o: WrapOptions = {}): ObjectStore & { calls: StoreCalls } {
  const calls: StoreCalls = { get: [], put: [], list: [], delete: [] };
  let puts = 0;
  const wrapped = {
    url: store.url,
    limits: store.limits,
    calls,
    get(key: string, ...rest: unknown[]) {
      calls.get.push(key);
      return (store.get as (k: string, ...r: unknown[]) => ReturnType<ObjectStore["get"]>).call(store, key, ...rest);
    },
    async put(key: string, bytes: Uint8Array | string, options?: Parameters<ObjectStore["put"]>[2]) {
      const n = ++puts;
      calls.put.push(key);
      await o.beforePut?.(n, key);
      if (o.failPutAt !== undefined && n >= o.failPutAt) throw (o.failWith ?? (() => new Error("connection reset by peer")))();
      return store.put(key, bytes, options);
    },
    list(prefix: string, options?: Parameters<ObjectStore["list"]>[1]) {
      calls.list.push(prefix);
      return store.list(prefix, options);
    },
    delete(key: string, options?: Parameters<ObjectStore["delete"]>[1]) {
      calls.delete.push(key);
      return store.delete(key, options);
    },
  };
  return wrapped;
}

/** The test job's definition, for variants: `defineJob({ ...numberedDefinition, order: "heaviest-first" })`. */
export const numberedDefinition = {
  name: "numbered",
  args: z.object({ count: z.coerce.number().int().min(0).default(10), dupAt: z.coerce.number().int().optional(), badAt: z.coerce.number().int().optional() }),
  item: z.object({ n: z.number().int(), cost: z.number().min(0) }),
  *source(args: { count: number; dupAt?: number; badAt?: number }) {
    for (let n = 0; n < args.count; n++) {
      if (n === args.badAt) yield { n: "not a number", cost: 1 };
      // dupAt: this item takes the key of item 3.
      else yield { n: n === args.dupAt ? 3 : n, cost: (n * 7919) % 101 };
    }
  },
  key: (item: { n: number }) => `k${item.n}`,
  shard: { itemsPerShard: 10 },
  run: (item: { n: number }) => ({ n: item.n }),
};
export const numbered = defineJob(numberedDefinition);

/** planRun takes any job: the handle's own type parameters do not matter to it. */
export function asJob(job: unknown): Job {
  return job as Job;
}

export const SETTINGS = { leaseTtlMs: 30_000, taskTimeoutSeconds: 60, maxRetries: 1, maxLaunches: 2 };

export function planOptions(store: ObjectStore, over: Partial<PlanOptions> = {}): PlanOptions {
  return { store, job: asJob(numbered), module: "jobs/numbered/index.js", version: "v1", args: {}, settings: SETTINGS, trigger: "test", ...over };
}

/** Every item line of a plan, shard by shard, read back through the shard reader. */
export async function readBack(store: ObjectStore, run: RunRecord): Promise<{ shard: number; i: number; key: string; item: unknown }[]> {
  const out: { shard: number; i: number; key: string; item: unknown }[] = [];
  const headers = new Map();
  for (let s = 0; s < run.plan.shardCount; s++) {
    const got = await readShard(store, run, s, headers);
    for (const line of itemLines(got.bytes, got.object)) out.push({ shard: s, i: line.i, key: line.key, item: line.item });
  }
  return out;
}
