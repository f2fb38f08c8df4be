/** Waiting and seeded randomness, shared by the worker, the adapters, tests and benchmarks. */

/** Waits `ms`, rejecting with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A small seeded PRNG (mulberry32), uniform in [0, 1): chaos schedules, fault injection and
 * property tests replay exactly from their seed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Time as the worker, the store adapters and the launchers see it. Production uses the real clock;
 * the scale simulation runs a clock K times faster than real time, so that store latencies, write
 * limits, heartbeats and item durations keep their ratios while a long run takes minutes.
 */
export interface Clock {
  /** Milliseconds since the epoch, on this clock. */
  now(): number;
  /** Waits `ms` of this clock's time; rejects with the signal's reason as soon as it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = Object.freeze({ now: () => Date.now(), sleep });

/**
 * A clock that runs `k` times faster than real time, starting at `start` (default: now). One real
 * millisecond is `k` of its milliseconds; `sleep(ms)` waits `ms / k` real milliseconds.
 */
export function scaledClock(k: number, start = Date.now()): Clock {
  if (!(Number.isFinite(k) && k > 0)) throw new TypeError(`Expected \`k\` to be a number above 0, got ${k}`);
  const origin = performance.now();
  return Object.freeze({
    now: () => start + (performance.now() - origin) * k,
    sleep: (ms: number, signal?: AbortSignal) => sleep(ms / k, signal),
  });
}
