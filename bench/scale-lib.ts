/**
 * What the scale bench (bench/scale.ts) uses around the simulation: a store wrapper that counts
 * one simulated process's requests by kind, an exactly-once check that reads the bucket directly
 * (outside the simulation: it costs no simulated time and counts no requests), and a probe of the
 * event loop, which must not be what limits a run (a busy loop makes simulated time stretch and
 * every ratio lie).
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from "node:perf_hooks";
import type { ObjectStore, StoreLimits } from "../src/store/port.js";
import type { SimBucket } from "../src/store/sim.js";

export interface Counts {
  get: number;
  put: number;
  list: number;
  delete: number;
  /** Reads of checkpoint objects (each claim a task tries starts with one). */
  checkpointGets: number;
  /** Requests by call and kind of object, e.g. "put output part" (see `objectKind`). */
  byKind: Map<string, number>;
}

const zero = (): Counts => ({ get: 0, put: 0, list: 0, delete: 0, checkpointGets: 0, byKind: new Map() });

/** The kind of object a key names: its last segment with numbers dropped, or its folder's role. */
export function objectKind(key: string): string {
  if (key.includes("/out/")) return "output part";
  if (key.includes("/tasks/")) return "task record";
  if (key.includes("/budget/")) return "budget bank";
  if (key.includes("/steps/")) return "step";
  const last = key.slice(key.lastIndexOf("/") + 1);
  return last === "" ? key.split("/").slice(-2, -1)[0]!.replace(/\d+/g, "N") + "/" : last.replace(/\d+/g, "N");
}

const tally = (c: Counts, op: string, key: string) => {
  const k = `${op} ${objectKind(key)}`;
  c.byKind.set(k, (c.byKind.get(k) ?? 0) + 1);
};

/** The store as one simulated process uses it, with its requests counted (one per call). */
export function countingStore(store: ObjectStore): { store: ObjectStore; counts: Counts; reset(): Counts } {
  let counts = zero();
  const wrapped: ObjectStore = {
    url: store.url,
    get limits(): StoreLimits {
      return store.limits;
    },
    get: (key, options) => {
      counts.get++;
      tally(counts, "get", key);
      if (key.endsWith("/checkpoint.json")) counts.checkpointGets++;
      return store.get(key, options);
    },
    put: (key, bytes, options) => {
      counts.put++;
      tally(counts, "put", key);
      return store.put(key, bytes, options);
    },
    list: (prefix, options) => {
      counts.list++;
      tally(counts, "list", prefix.endsWith("/") ? prefix : `${prefix}/`);
      return store.list(prefix, options);
    },
    delete: (key, options) => {
      counts.delete++;
      tally(counts, "delete", key);
      return store.delete(key, options);
    },
  };
  return {
    store: wrapped,
    get counts() {
      return counts;
    },
    reset() {
      const was = counts;
      counts = zero();
      return was;
    },
  };
}

export const total = (c: Counts) => c.get + c.put + c.list + c.delete;

/**
 * Reads the run's final checkpoints and the parts they name straight from the bucket, and counts
 * each item's output lines: every item must appear exactly once (outputs or failure lines).
 */
export function outputsPerItem(bucket: SimBucket, prefix: string, runId: string, items: number): { counts: Uint8Array; shards: number; open: number } {
  const counts = new Uint8Array(items);
  const base = `${prefix}/runs/${runId}/shards/`;
  let after: { name: string; isPrefix: boolean } | undefined;
  let shards = 0;
  let open = 0;
  const decoder = new TextDecoder();
  for (;;) {
    const page = bucket.listEntries(base, { maxResults: 1000, ...(after ? { after } : {}) });
    for (const e of page.entries) {
      if (!e.object || !e.name.endsWith("/checkpoint.json")) continue;
      shards++;
      const cp = JSON.parse(decoder.decode(e.object.bytes)) as { state: string; parts: { name: string }[] };
      if (cp.state !== "done") open++;
      const dir = e.name.slice(0, -"checkpoint.json".length) + "out/";
      for (const p of cp.parts) {
        const part = bucket.read(dir + p.name);
        if (!part) throw new Error(`${dir + p.name} is named by its checkpoint but missing`);
        for (const line of decoder.decode(part.bytes).split("\n")) {
          if (!line) continue;
          const i = (JSON.parse(line) as { i: number }).i;
          if (counts[i]! < 255) counts[i]!++;
        }
      }
    }
    const last = page.entries.at(-1);
    if (!page.more || !last) break;
    after = { name: last.name, isPrefix: last.isPrefix };
  }
  return { counts, shards, open };
}

/** Event-loop utilisation and timer lateness over a stretch of the run. */
export class LoopProbe {
  readonly #delay = monitorEventLoopDelay({ resolution: 10 });
  #elu: EventLoopUtilization;

  constructor() {
    this.#delay.enable();
    this.#elu = performance.eventLoopUtilization();
  }

  /** Share of real time the loop was busy, and the p99 of its lateness in real ms. */
  stop(): { utilisation: number; p99DelayMs: number; maxDelayMs: number } {
    const elu = performance.eventLoopUtilization(this.#elu);
    this.#delay.disable();
    return { utilisation: elu.utilization, p99DelayMs: this.#delay.percentile(99) / 1e6, maxDelayMs: this.#delay.max / 1e6 };
  }
}

export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
