/**
 * The simulated Cloud Storage: the store contract on a scaled clock, then each refusal it makes
 * (429 per object name, 429 beyond the bucket's write and read rates, the ramp of those rates,
 * pages of 1,000), its counters and cost, its latencies and its injected faults. The refusal
 * tests run on a clock that moves only when told, with no latency and no retries, so that each
 * answer is exactly the one the rule gives.
 */
import { describe, expect, it } from "vitest";
import { scaledClock, type Clock } from "../../src/core/time.js";
import { listAll } from "../../src/store/port.js";
import { openStore } from "../../src/store/open.js";
import { SimBucket, SimObjectStore, type SimBucketOptions, type SimObjectStoreOptions } from "../../src/store/sim.js";
import { storeContract } from "./store-contract.js";

const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);
const NO_LATENCY = { read: { medianMs: 0, p99Ms: 0 }, write: { medianMs: 0, p99Ms: 0 }, list: { medianMs: 0, p99Ms: 0 } };

storeContract("sim", async () => {
  // 100 times faster than real time: the suite's waits for the one-write-a-second gap stay short.
  const bucket = new SimBucket({ clock: scaledClock(100) });
  // The concurrency test has 8 writers on one object name, which takes one write a second: each
  // put may meet many 429s in a row before its turn, more than the default 8 attempts allow.
  const open = () => new SimObjectStore({ bucket, prefix: "contract", retry: { attempts: 50 } });
  return { store: open(), reopen: async () => open(), cleanup: async () => undefined, sleep: (ms) => bucket.clock.sleep(ms), now: () => bucket.clock.now() };
});

/** A clock that moves only when `advance` is called; sleeps of 0 end at once. */
function manualClock(start = Date.UTC(2026, 11, 1)) {
  let now = start;
  const timers = new Set<{ at: number; resolve: () => void }>();
  const clock = {
    now: () => now,
    sleep(ms: number, signal?: AbortSignal): Promise<void> {
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (ms <= 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = { at: now + ms, resolve };
        timers.add(timer);
        signal?.addEventListener("abort", () => {
          timers.delete(timer);
          reject(signal.reason);
        });
      });
    },
    /** Moves the time on and ends the sleeps that are due. */
    async advance(ms: number): Promise<void> {
      now += ms;
      for (const timer of [...timers]) {
        if (timer.at <= now) {
          timers.delete(timer);
          timer.resolve();
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  return clock satisfies Clock;
}

/** A bucket on a manual clock with no latency, and a store over it that does not retry. */
function frozen(options: SimBucketOptions = {}, store: Partial<SimObjectStoreOptions> = {}) {
  const clock = manualClock();
  const bucket = new SimBucket({ clock, latency: NO_LATENCY, ...options });
  return { clock, bucket, store: new SimObjectStore({ bucket, retry: { attempts: 1 }, ...store }) };
}

const refused429 = (why: RegExp) => expect.objectContaining({ code: "INTERNAL", message: expect.stringMatching(new RegExp(`refused with 429.*${why.source}`)) });

describe("SimBucket refusals", () => {
  it("answers 429 to a second mutation of one object name within a second, and only to that", async () => {
    const { clock, bucket, store } = frozen();
    await store.put("k", "1");
    await clock.advance(500);
    await expect(store.put("k", "2")).rejects.toEqual(refused429(/changed 500 ms ago; the limit is one change per 1000 ms/));
    await expect(store.delete("k")).rejects.toEqual(refused429(/one change per 1000 ms/));
    await store.put("other", "x");
    expect(text((await store.get("k"))?.bytes)).toBe("1");
    await clock.advance(500);
    await store.put("k", "2");
    expect(text((await store.get("k"))?.bytes)).toBe("2");
    const stats = bucket.stats();
    expect(stats.throttled).toEqual({ objectGap: 2, bucketWrites: 0, bucketReads: 0, total: 2 });
    expect(stats.peakObjectWritesPerSecond).toBe(1);
    expect(bucket.writeCounts()).toEqual(new Map([["k", 2], ["other", 1]]));
  });

  it("lets a conditioned write through its 429s by retrying, as the gcs adapter does", async () => {
    const { clock, bucket, store } = frozen({}, { retry: { attempts: 20, minDelayMs: 100, maxDelayMs: 400 } });
    const start = clock.now();
    const first = await store.put("k", "1");
    let settled = false;
    const pending = store.put("k", "2", { ifGenerationMatch: first }).finally(() => (settled = true));
    // The retry's backoff runs on the clock: move it on until the write is through.
    while (!settled) await clock.advance(50);
    const second = await pending;
    expect(clock.now() - start).toBeGreaterThanOrEqual(1000);
    expect(await store.get("k")).toMatchObject({ generation: second });
    expect(bucket.stats().throttled.objectGap).toBeGreaterThan(0);
    expect(bucket.stats().peakObjectWritesPerSecond).toBe(1);
  });

  it("answers 429 beyond the bucket's write rate and takes writes again the next second", async () => {
    const { clock, bucket, store } = frozen({ writes: { initialPerSecond: 10 } });
    const results = await Promise.allSettled(Array.from({ length: 15 }, (_, i) => store.put(`w/${i}`, "x")));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toEqual(refused429(/write rate \(10\/s now\) is exceeded/));
    expect(bucket.stats()).toMatchObject({ throttled: { bucketWrites: 5, total: 5 }, peakWritesPerSecond: 10 });
    await clock.advance(1000);
    const next = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.put(`w/next-${i}`, "x")));
    expect(next.every((r) => r.status === "fulfilled")).toBe(true);
    // Deletes are writes too.
    await expect(store.delete("w/0")).rejects.toEqual(refused429(/write rate/));
  });

  it("answers 429 beyond the bucket's read rate, lists included", async () => {
    const { clock, bucket, store } = frozen({ reads: { initialPerSecond: 20 } });
    const gets = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => store.get(`r/${i}`)));
    expect(gets.filter((r) => r.status === "fulfilled")).toHaveLength(20);
    await clock.advance(1000);
    const lists = await Promise.allSettled(Array.from({ length: 21 }, () => store.list("r/")));
    const refused = lists.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason);
    expect(refused).toEqual([expect.objectContaining({ message: expect.stringMatching(/after 1 attempt: .*read rate \(20\/s now\) is exceeded/) })]);
    expect(bucket.stats()).toMatchObject({ throttled: { bucketReads: 6 }, peakReadsPerSecond: 20 });
  });

  it("ramps its write rate up at most twofold per doubling time, and only under load", async () => {
    const doublingMs = 60_000;
    const drive = async (perStep: number) => {
      const { clock, bucket, store } = frozen({ writes: { initialPerSecond: 10, doublingMs } });
      // 60 s of demand well above half the capacity, in steps of 100 ms.
      for (let step = 0; step < 600; step++) {
        await Promise.allSettled(Array.from({ length: perStep }, (_, i) => store.put(`ramp/${step}-${i}`, "x")));
        await clock.advance(100);
      }
      return { clock, bucket, store };
    };
    const { clock, bucket, store } = await drive(3);
    const grown = bucket.stats().writeCapacity;
    expect(grown).toBeGreaterThan(19);
    expect(grown).toBeLessThanOrEqual(20);
    // Ten times the demand does not ramp it faster.
    expect((await drive(30)).bucket.stats().writeCapacity).toBeLessThanOrEqual(20);
    // It now takes about 20 a second.
    await clock.advance(1000);
    const burst = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => store.put(`after/${i}`, "x")));
    expect(burst.filter((r) => r.status === "fulfilled")).toHaveLength(Math.floor(grown));
    // Idle time does not grow it.
    await clock.advance(10 * 60_000);
    await store.put("idle", "x");
    expect(bucket.stats().writeCapacity).toBeCloseTo(grown, 6);
  });

  it("gives list pages of at most 1,000 entries whatever is asked", async () => {
    const { bucket, store } = frozen({ writes: { initialPerSecond: 10_000 }, objectWriteGapMs: 0 });
    const names = Array.from({ length: 2500 }, (_, i) => `p/${String(i).padStart(4, "0")}`);
    await Promise.all(names.map((name) => store.put(name, "x")));
    const first = await store.list("p/", { maxResults: 5000, withMetadata: true });
    expect(first.keys).toHaveLength(1000);
    expect(first.objects).toHaveLength(1000);
    expect(first.nextPageToken).toBeDefined();
    const before = bucket.stats().requests.list;
    const all: string[] = [];
    for await (const key of listAll(store, "p/", { maxResults: 5000 })) all.push(key);
    expect(all).toEqual(names);
    expect(bucket.stats().requests.list - before).toBe(3);
  });
});

describe("SimBucket counters", () => {
  it("counts every request by kind and pricing class, prices them, and counts writes per name", async () => {
    const { bucket, store } = frozen({ objectWriteGapMs: 0, prices: { classAPer1000Usd: 5, classBPer1000Usd: 0.4 } });
    const generation = await store.put("a", "1");
    await store.put("a", "2", { ifGenerationMatch: generation });
    await store.get("a");
    await store.get("missing");
    await store.list("");
    await store.delete("a");
    expect(await store.delete("b", { ifGenerationMatch: "0" })).toBe(false);
    const stats = bucket.stats();
    expect(stats.requests).toEqual({ insert: 2, get: 2, list: 1, delete: 1, getMetadata: 1 });
    expect([stats.classA, stats.classB, stats.free]).toEqual([3, 3, 1]);
    expect(stats.costUsd).toBeCloseTo((3 * 5 + 3 * 0.4) / 1000, 12);
    expect(stats.peakObjectWritesPerSecond).toBe(3);
    expect(stats.peakWritesPerSecond).toBe(3);
    expect(bucket.writeCounts()).toEqual(new Map([["a", 3]]));
    bucket.resetStats();
    expect(bucket.stats()).toMatchObject({ classA: 0, classB: 0, free: 0, costUsd: 0, peakWritesPerSecond: 0 });
    expect(bucket.writeCounts().size).toBe(0);
  });

  it("prices at Cloud Storage's list prices by default", async () => {
    const { bucket, store } = frozen({ objectWriteGapMs: 0 });
    for (let i = 0; i < 10; i++) await store.put(`k${i}`, "x");
    for (let i = 0; i < 10; i++) await store.get(`k${i}`);
    expect(bucket.stats().costUsd).toBeCloseTo((10 * 0.005 + 10 * 0.0004) / 1000, 12);
  });
});

describe("SimBucket latency and faults", () => {
  it("sleeps a lognormal latency on its clock for every request: median 20 ms for reads, 30 ms for writes", async () => {
    const slept: number[] = [];
    const clock: Clock = {
      now: () => Date.UTC(2026, 11, 1) + slept.length,
      sleep: (ms, signal) => {
        slept.push(ms);
        // The attempt's deadline: it must not pass, only be called off.
        if (ms >= 1e9) return new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
        return Promise.resolve();
      },
    };
    const bucket = new SimBucket({ clock, objectWriteGapMs: 0, writes: { initialPerSecond: 1e9 }, reads: { initialPerSecond: 1e9 } });
    const store = new SimObjectStore({ bucket, requestTimeoutMs: 1e9 });
    const latencies = async (call: () => Promise<unknown>) => {
      const out: number[] = [];
      for (let i = 0; i < 3000; i++) {
        const from = slept.length;
        await call();
        // The request's two halves; the deadline's own sleep is the one of 1e9.
        out.push(slept.slice(from).filter((ms) => ms !== 1e9).reduce((a, b) => a + b, 0));
      }
      return out.sort((a, b) => a - b);
    };
    const reads = await latencies(() => store.get("k"));
    const writes = await latencies(() => store.put("k", "x"));
    const at = (sorted: number[], q: number) => sorted[Math.floor(q * (sorted.length - 1))]!;
    expect(at(reads, 0.5)).toBeGreaterThan(18);
    expect(at(reads, 0.5)).toBeLessThan(22);
    expect(at(reads, 0.99)).toBeGreaterThan(60);
    expect(at(reads, 0.99)).toBeLessThan(100);
    expect(at(writes, 0.5)).toBeGreaterThan(27);
    expect(at(writes, 0.5)).toBeLessThan(33);
    expect(at(writes, 0.99)).toBeGreaterThan(110);
    expect(at(writes, 0.99)).toBeLessThan(190);
  });

  it("retries 503s and settles writes whose answers were lost, by their write id", async () => {
    const bucket = new SimBucket({ clock: scaledClock(200), latency: NO_LATENCY, seed: 7, faults: { unavailable: 0.2, lostAnswer: 0.2 } });
    const store = new SimObjectStore({ bucket, retry: { attempts: 20, minDelayMs: 10, maxDelayMs: 50 } });
    for (let i = 0; i < 40; i++) {
      const generation = await store.put(`f/${i}`, String(i), { ifGenerationMatch: 0, metadata: { i: String(i) } });
      expect(await store.get(`f/${i}`)).toEqual({ bytes: new TextEncoder().encode(String(i)), generation, metadata: { i: String(i) } });
    }
    const stats = bucket.stats();
    expect(stats.unavailable).toBeGreaterThan(0);
    expect(stats.lostAnswers).toBeGreaterThan(0);
    // A lost create-only answer is followed by a 412 and a read of the write id.
    expect(stats.requests.getMetadata).toBeGreaterThan(0);
  });

  it("does not retry an unconditional write whose answer was lost, though it was applied", async () => {
    const bucket = new SimBucket({ clock: scaledClock(200), latency: NO_LATENCY, faults: { lostAnswer: 1 } });
    const store = new SimObjectStore({ bucket });
    await expect(store.put("blind", "x")).rejects.toMatchObject({ message: expect.stringContaining("may have been applied") });
    expect(bucket.stats().requests.insert).toBe(1);
    expect(bucket.read("blind")).toBeDefined();
  });

  it("abandons a request that outlasts requestTimeoutMs on its clock", async () => {
    const slow = { medianMs: 60_000, p99Ms: 60_000 };
    const bucket = new SimBucket({ clock: scaledClock(1000), latency: { ...NO_LATENCY, read: slow } });
    const store = new SimObjectStore({ bucket, requestTimeoutMs: 1000, retry: { attempts: 2, minDelayMs: 1, maxDelayMs: 1 } });
    await expect(store.get("k")).rejects.toMatchObject({ message: expect.stringMatching(/after 2 attempts: no answer within 1000 ms/) });
  });
});

describe("SimObjectStore", () => {
  it("is never opened from a URL", async () => {
    await expect(openStore("sim://sim-bucket/x")).rejects.toMatchObject({ code: "USAGE" });
  });

  it("names itself by its bucket and prefix and declares the bucket's limits", () => {
    const bucket = new SimBucket({ name: "scale-bench", writes: { initialPerSecond: 500 } });
    const store = new SimObjectStore({ bucket, prefix: "runs/" });
    expect(store.url).toBe("sim://scale-bench/runs");
    expect(store.limits).toEqual({ objectWriteGapMs: 1000, writesPerSecond: 500, readsPerSecond: 5000 });
    expect(() => new SimObjectStore({ bucket, prefix: "../x" })).toThrow("Expected `prefix`");
  });
});
