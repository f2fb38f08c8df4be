/**
 * The server side of the simulated Cloud Storage: one in-memory bucket that answers requests the
 * way Cloud Storage does, slowly and sometimes with a refusal, and counts what they would cost.
 * The client side, an ObjectStore with the gcs adapter's retries, is sim.ts. Several clients
 * (as several processes would) share one bucket.
 *
 * What it models, with its defaults (all from Cloud Storage's documentation):
 * - latency of every request, lognormal: reads median 20 ms / p99 80 ms, writes and lists
 *   median 30 ms / p99 150 ms (half before the request is served, half after);
 * - 429 for a mutation (insert or delete) of one object name less than 1 s after the last one
 *   applied to it ("one write per second to the same object name", quotas page);
 * - 429 beyond the bucket's capacity: about 1,000 writes and 5,000 reads a second at first
 *   (request-rate guidelines; deletes count as writes, lists as reads), growing at most twofold
 *   every 20 minutes while demand presses on it (see RampedCapacity);
 * - list pages of at most 1,000 entries;
 * - every request counted by pricing class (Class A: inserts and lists; Class B: gets of data or
 *   metadata; deletes free) and priced at list prices (defaults: Standard storage in one region,
 *   $0.005 per 1,000 Class A and $0.0004 per 1,000 Class B, as cloud.google.com/storage/pricing
 *   gave them on 2026-12-01). Every request is counted, refused ones too: an upper bound.
 * - optionally, 503s and answers lost after the request was applied, at given rates.
 * All time (latency, the per-object gap, rate windows) runs on the injected clock.
 */
import { realClock, seededRandom, type Clock } from "../core/time.js";
import type { StoreLimits } from "./port.js";
import { lognormalSampler, RampedCapacity, SlidingWindow, type LatencyModel, type RampOptions } from "./sim-limits.js";

export type SimRequestKind = "get" | "getMetadata" | "list" | "insert" | "delete";
export type PricingClass = "A" | "B" | "free";

const PRICING: Record<SimRequestKind, PricingClass> = { get: "B", getMetadata: "B", list: "A", insert: "A", delete: "free" };
const WRITES = new Set<SimRequestKind>(["insert", "delete"]);
/** Cloud Storage's page size for objects.list. */
export const SIM_PAGE_SIZE = 1000;

/** The defaults, documented above. */
export const SIM_DEFAULTS = Object.freeze({
  objectWriteGapMs: 1000,
  writes: { initialPerSecond: 1000, doublingMs: 20 * 60_000 },
  reads: { initialPerSecond: 5000, doublingMs: 20 * 60_000 },
  latency: { read: { medianMs: 20, p99Ms: 80 }, write: { medianMs: 30, p99Ms: 150 }, list: { medianMs: 30, p99Ms: 150 } },
  prices: { classAPer1000Usd: 0.005, classBPer1000Usd: 0.0004 },
});

export interface SimBucketOptions {
  /** Shows in the stores' URLs (`sim://name/prefix`). @default "sim-bucket" */
  name?: string;
  /** @default realClock; a test or bench passes scaledClock(k) to run k times faster */
  clock?: Clock;
  /** Seeds latencies and faults, so that a run can be replayed (up to the order of concurrent calls). @default 1 */
  seed?: number;
  /**
   * Latency of each kind of request. `{ medianMs: 0, p99Ms: 0 }` answers at once.
   * @default { read: { medianMs: 20, p99Ms: 80 }, write: { medianMs: 30, p99Ms: 150 }, list: { medianMs: 30, p99Ms: 150 } }
   */
  latency?: { read?: LatencyModel; write?: LatencyModel; list?: LatencyModel };
  /** Shortest gap between two mutations of one object name, in ms. @default 1000 */
  objectWriteGapMs?: number;
  /** Bucket capacity for inserts and deletes. @default { initialPerSecond: 1000, doublingMs: 1200000 } */
  writes?: RampOptions;
  /** Bucket capacity for gets and lists. @default { initialPerSecond: 5000, doublingMs: 1200000 } */
  reads?: RampOptions;
  /** List prices in USD. @default { classAPer1000Usd: 0.005, classBPer1000Usd: 0.0004 } */
  prices?: { classAPer1000Usd: number; classBPer1000Usd: number };
  /**
   * Shares of requests that fail: `unavailable` are answered 503 without being applied;
   * `lostAnswer` are applied, then the connection is reset before the answer.
   * @default {} (none)
   * @example { unavailable: 0.02, lostAnswer: 0.01 }
   */
  faults?: { unavailable?: number; lostAnswer?: number };
}

/** An HTTP error answer of the simulated bucket; the status is `code`, as on the client library's errors. */
export class SimHttpError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.name = "SimHttpError";
    this.code = code;
    this.reason = reason;
  }
}

/** One live object: its current generation. Bytes are never changed in place. */
export interface SimObject {
  name: string;
  bytes: Uint8Array;
  generation: string;
  /** Custom metadata as stored, the clients' own entries included. */
  metadata: Record<string, string>;
  /** Clock time of the write. */
  updated: number;
}

/** One entry of a list page: an object, or a prefix rolled up at the delimiter. */
export interface SimListEntry {
  name: string;
  isPrefix: boolean;
  object?: SimObject;
}

/** What the bucket has been asked and how it answered, since it was made or last reset. */
export interface SimStats {
  /** Requests received, by kind, refused ones included. */
  requests: Record<SimRequestKind, number>;
  /** Requests by pricing class. */
  classA: number;
  classB: number;
  free: number;
  /** Class A and B requests at the bucket's prices. */
  costUsd: number;
  /** 429s sent: for a name mutated within the gap, beyond the write capacity, beyond the read capacity. */
  throttled: { objectGap: number; bucketWrites: number; bucketReads: number; total: number };
  /** 503s sent, and answers lost after the request was applied (the `faults` option). */
  unavailable: number;
  lostAnswers: number;
  /** Most writes (reads) the bucket took in any one second. */
  peakWritesPerSecond: number;
  peakReadsPerSecond: number;
  /** Most mutations applied to one object name in any one second. */
  peakObjectWritesPerSecond: number;
  /** The capacities now, per second (they ramp up under load). */
  writeCapacity: number;
  readCapacity: number;
}

/**
 * An in-memory Cloud Storage bucket with Cloud Storage's latencies, limits and prices.
 * @example
 * const bucket = new SimBucket({ clock: scaledClock(50) });
 * const store = new SimObjectStore({ bucket, prefix: "shardrun" });
 */
export class SimBucket {
  readonly name: string;
  readonly clock: Clock;
  readonly limits: StoreLimits;
  readonly #objects = new Map<string, SimObject>();
  /** Live names, sorted: lists walk it. */
  readonly #names: string[] = [];
  readonly #gapMs: number;
  readonly #random: () => number;
  readonly #latency: Record<"read" | "write" | "list", () => number>;
  readonly #prices: { classAPer1000Usd: number; classBPer1000Usd: number };
  readonly #faults: { unavailable: number; lostAnswer: number };
  readonly #writeCapacity: RampedCapacity;
  readonly #readCapacity: RampedCapacity;
  #generation: bigint;
  /** Per name, the clock time of the last mutation applied. */
  readonly #lastMutation = new Map<string, number>();
  #counters = newCounters();

  constructor(options: SimBucketOptions = {}) {
    const { name = "sim-bucket", clock = realClock, seed = 1, objectWriteGapMs = SIM_DEFAULTS.objectWriteGapMs } = options;
    if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(name)) throw new TypeError(`Expected \`name\` to be a bucket name (lowercase letters, digits, - _ .), got ${JSON.stringify(name)}`);
    if (!(objectWriteGapMs >= 0)) throw new TypeError(`Expected \`objectWriteGapMs\` to be a number from 0 and up, got ${objectWriteGapMs}`);
    const writes = { ...SIM_DEFAULTS.writes, ...options.writes };
    const reads = { ...SIM_DEFAULTS.reads, ...options.reads };
    this.name = name;
    this.clock = clock;
    this.#gapMs = objectWriteGapMs;
    this.#random = seededRandom(seed);
    const latency = { ...SIM_DEFAULTS.latency, ...options.latency };
    this.#latency = {
      read: lognormalSampler(latency.read, this.#random),
      write: lognormalSampler(latency.write, this.#random),
      list: lognormalSampler(latency.list, this.#random),
    };
    this.#prices = { ...SIM_DEFAULTS.prices, ...options.prices };
    this.#faults = { unavailable: 0, lostAnswer: 0, ...options.faults };
    this.#writeCapacity = new RampedCapacity(writes);
    this.#readCapacity = new RampedCapacity(reads);
    this.limits = Object.freeze({ objectWriteGapMs, writesPerSecond: writes.initialPerSecond, readsPerSecond: reads.initialPerSecond });
    // Generations look like Cloud Storage's: microseconds of the clock, always increasing.
    this.#generation = BigInt(Math.floor(clock.now())) * 1000n;
  }

  /**
   * One request: half its latency, then the bucket's refusals (503, 429), then `serve` at the
   * server (which reads or changes the bucket, or throws an HTTP error), then the other half.
   * `signal` abandons the wait for the answer, not the request: it is served all the same.
   */
  async request<T>(kind: SimRequestKind, name: string, serve: (now: number) => T, signal?: AbortSignal): Promise<T> {
    const latency = this.#latency[kind === "list" ? "list" : WRITES.has(kind) ? "write" : "read"]();
    await this.clock.sleep(latency / 2);
    const now = this.clock.now();
    const c = this.#counters;
    c.requests[kind]++;
    let answer: { value: T } | { error: unknown };
    try {
      if (this.#faults.unavailable > 0 && this.#random() < this.#faults.unavailable) {
        c.unavailable++;
        throw new SimHttpError(503, "backendError", `${kind} ${name}: service unavailable (injected)`);
      }
      this.#admit(kind, name, now);
      answer = { value: serve(now) };
    } catch (error) {
      answer = { error };
    }
    if ("value" in answer && this.#faults.lostAnswer > 0 && this.#random() < this.#faults.lostAnswer) {
      c.lostAnswers++;
      throw Object.assign(new Error(`${kind} ${name}: connection reset after the request was applied (injected)`), { code: "ECONNRESET" });
    }
    // An error answer takes the way back as well.
    await this.clock.sleep(latency / 2, signal);
    if ("error" in answer) throw answer.error;
    return answer.value;
  }

  /** The live object of a name. */
  read(name: string): SimObject | undefined {
    return this.#objects.get(name);
  }

  /**
   * Writes a new generation of `name`, if `ifGenerationMatch` holds ("0": only if absent);
   * 412 if not. Call it from inside `request` only: that is where the per-name gap is kept.
   */
  insert(name: string, bytes: Uint8Array, metadata: Record<string, string>, ifGenerationMatch: string | undefined, now: number): SimObject {
    const current = this.#objects.get(name);
    if (ifGenerationMatch !== undefined && (current?.generation ?? "0") !== ifGenerationMatch) {
      throw new SimHttpError(412, "conditionNotMet", `${name}: precondition failed (ifGenerationMatch ${ifGenerationMatch})`);
    }
    const object: SimObject = { name, bytes: bytes.slice(), generation: this.#nextGeneration(now), metadata: { ...metadata }, updated: now };
    if (!current) this.#names.splice(lowerBound(this.#names, name), 0, name);
    this.#objects.set(name, object);
    this.#applied(name, now);
    return object;
  }

  /**
   * Deletes `name`. Without a condition: 404 if absent. With `generation` (the generation the
   * caller saw, as the gcs adapter pins it): 404 if no such generation is live, 412 if another is.
   */
  remove(name: string, generation: string | undefined, now: number): void {
    const current = this.#objects.get(name);
    if (!current) throw new SimHttpError(404, "notFound", `${name}: no such object`);
    if (generation !== undefined && current.generation !== generation) {
      throw new SimHttpError(412, "conditionNotMet", `${name}: precondition failed (ifGenerationMatch ${generation})`);
    }
    this.#objects.delete(name);
    this.#names.splice(lowerBound(this.#names, name), 1);
    this.#applied(name, now);
  }

  /**
   * Up to `maxResults` (at most 1,000) entries under `prefix` past `after`, in name order, with
   * `delimiter` rolling names up into prefixes; `more` when a next page has entries.
   */
  listEntries(
    prefix: string,
    options: { delimiter?: string; after?: { name: string; isPrefix: boolean }; maxResults: number; startOffset?: string; match?: (name: string) => boolean },
  ): { entries: SimListEntry[]; more: boolean } {
    const { delimiter, after, match } = options;
    const limit = Math.min(options.maxResults, SIM_PAGE_SIZE);
    const names = this.#names;
    let i = lowerBound(names, prefix);
    if (after) i = Math.max(i, after.isPrefix ? lowerBound(names, bump(after.name)) : upperBound(names, after.name));
    if (options.startOffset !== undefined) i = Math.max(i, lowerBound(names, options.startOffset));
    const entries: SimListEntry[] = [];
    while (i < names.length && entries.length <= limit) {
      const name = names[i]!;
      if (!name.startsWith(prefix)) break;
      // matchGlob: the server skips what does not match; pages hold matches only.
      if (match && !match(name)) {
        i++;
        continue;
      }
      const cut = delimiter ? name.indexOf(delimiter, prefix.length) : -1;
      if (cut >= 0) {
        const rolled = name.slice(0, cut + delimiter!.length);
        entries.push({ name: rolled, isPrefix: true });
        i = lowerBound(names, bump(rolled));
      } else {
        entries.push({ name, isPrefix: false, object: this.#objects.get(name)! });
        i++;
      }
    }
    return { entries: entries.slice(0, limit), more: entries.length > limit };
  }

  stats(): SimStats {
    const c = this.#counters;
    const classA = c.requests.insert + c.requests.list;
    const classB = c.requests.get + c.requests.getMetadata;
    return {
      requests: { ...c.requests },
      classA,
      classB,
      free: c.requests.delete,
      costUsd: (classA / 1000) * this.#prices.classAPer1000Usd + (classB / 1000) * this.#prices.classBPer1000Usd,
      throttled: { ...c.throttled, total: c.throttled.objectGap + c.throttled.bucketWrites + c.throttled.bucketReads },
      unavailable: c.unavailable,
      lostAnswers: c.lostAnswers,
      peakWritesPerSecond: c.writesTaken.peak,
      peakReadsPerSecond: c.readsTaken.peak,
      peakObjectWritesPerSecond: c.peakObjectWrites,
      writeCapacity: this.#writeCapacity.current,
      readCapacity: this.#readCapacity.current,
    };
  }

  /** Mutations applied per object name (under `prefix`), since the bucket was made or reset. */
  writeCounts(prefix = ""): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, count] of this.#counters.writesByName) if (name.startsWith(prefix)) out.set(name, count);
    return out;
  }

  /** 429s sent for a second change of a name within the gap, per name (under `prefix`). */
  gapRefusals(prefix = ""): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, count] of this.#counters.gapRefusalsByName) if (name.startsWith(prefix)) out.set(name, count);
    return out;
  }

  /** Starts the counters again (not the objects, the capacities or the per-name gaps). */
  resetStats(): void {
    this.#counters = newCounters();
  }

  /** Refuses with 429 what the bucket would not take now; otherwise counts it as taken. */
  #admit(kind: SimRequestKind, name: string, now: number): void {
    const c = this.#counters;
    const isWrite = WRITES.has(kind);
    const demand = (isWrite ? c.writesAsked : c.readsAsked).add(now);
    const capacity = (isWrite ? this.#writeCapacity : this.#readCapacity).at(now, demand);
    const taken = isWrite ? c.writesTaken : c.readsTaken;
    if (taken.count(now) + 1 > capacity) {
      if (isWrite) c.throttled.bucketWrites++;
      else c.throttled.bucketReads++;
      throw new SimHttpError(429, "rateLimitExceeded", `${kind} ${name}: the bucket's ${isWrite ? "write" : "read"} rate (${Math.floor(capacity)}/s now) is exceeded`);
    }
    if (isWrite) {
      const last = this.#lastMutation.get(name);
      if (last !== undefined && now - last < this.#gapMs) {
        c.throttled.objectGap++;
        c.gapRefusalsByName.set(name, (c.gapRefusalsByName.get(name) ?? 0) + 1);
        throw new SimHttpError(429, "rateLimitExceeded", `${kind} ${name}: the object was changed ${Math.round(now - last)} ms ago; the limit is one change per ${this.#gapMs} ms`);
      }
    }
    taken.add(now);
  }

  #applied(name: string, now: number): void {
    const c = this.#counters;
    this.#lastMutation.set(name, now);
    c.writesByName.set(name, (c.writesByName.get(name) ?? 0) + 1);
    let recent = c.recentByName.get(name);
    if (!recent) c.recentByName.set(name, (recent = new SlidingWindow()));
    c.peakObjectWrites = Math.max(c.peakObjectWrites, recent.add(now));
  }

  #nextGeneration(now: number): string {
    const fromClock = BigInt(Math.floor(now * 1000));
    this.#generation = fromClock > this.#generation ? fromClock : this.#generation + 1n;
    return this.#generation.toString();
  }
}

function newCounters() {
  return {
    requests: { get: 0, getMetadata: 0, list: 0, insert: 0, delete: 0 } satisfies Record<SimRequestKind, number>,
    throttled: { objectGap: 0, bucketWrites: 0, bucketReads: 0 },
    unavailable: 0,
    lostAnswers: 0,
    /** Requests asked for (demand, refused ones included) and taken (within capacity). */
    writesAsked: new SlidingWindow(),
    readsAsked: new SlidingWindow(),
    writesTaken: new SlidingWindow(),
    readsTaken: new SlidingWindow(),
    writesByName: new Map<string, number>(),
    gapRefusalsByName: new Map<string, number>(),
    recentByName: new Map<string, SlidingWindow>(),
    peakObjectWrites: 0,
  };
}

/** First index whose name is >= `name` (names are ASCII: string order is byte order). */
function lowerBound(names: string[], name: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (names[middle]! < name) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** First index whose name is > `name`. */
function upperBound(names: string[], name: string): number {
  const index = lowerBound(names, name);
  return names[index] === name ? index + 1 : index;
}

/** The first string after every string that starts with `prefix`. */
function bump(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
