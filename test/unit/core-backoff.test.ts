import { describe, expect, it } from "vitest";
import { nextRetryDelay, RetryPolicy } from "../../src/core/backoff.js";

const policy = (over: Partial<RetryPolicy> = {}): RetryPolicy => RetryPolicy.parse({ jitter: false, ...over });

describe("RetryPolicy", () => {
  it("fills the documented defaults", () => {
    expect(RetryPolicy.parse({})).toEqual({ attempts: 3, minDelayMs: 1000, maxDelayMs: 60_000, factor: 2, jitter: true });
  });

  it("keeps given values and fills the rest", () => {
    expect(RetryPolicy.parse({ attempts: 5, jitter: false })).toEqual({
      attempts: 5,
      minDelayMs: 1000,
      maxDelayMs: 60_000,
      factor: 2,
      jitter: false,
    });
  });

  it("rejects out-of-range values and unknown keys", () => {
    expect(RetryPolicy.safeParse({ attempts: 0 }).success).toBe(false);
    expect(RetryPolicy.safeParse({ attempts: 101 }).success).toBe(false);
    expect(RetryPolicy.safeParse({ attempts: 1.5 }).success).toBe(false);
    expect(RetryPolicy.safeParse({ minDelayMs: -1 }).success).toBe(false);
    expect(RetryPolicy.safeParse({ factor: 0.5 }).success).toBe(false);
    expect(RetryPolicy.safeParse({ retries: 3 }).success).toBe(false);
  });
});

describe("nextRetryDelay without jitter", () => {
  it("grows exponentially from minDelayMs by factor", () => {
    const p = policy({ minDelayMs: 1000, factor: 2, maxDelayMs: 1_000_000 });
    expect([1, 2, 3, 4, 5].map((a) => nextRetryDelay(p, a))).toEqual([1000, 2000, 4000, 8000, 16000]);
  });

  it("is capped at maxDelayMs", () => {
    const p = policy({ minDelayMs: 1000, factor: 2, maxDelayMs: 5000 });
    expect([1, 2, 3, 4, 5, 20, 100].map((a) => nextRetryDelay(p, a))).toEqual([1000, 2000, 4000, 5000, 5000, 5000, 5000]);
  });

  it("treats attempt 0 (and below) like attempt 1", () => {
    const p = policy({ minDelayMs: 700 });
    expect(nextRetryDelay(p, 0)).toBe(700);
    expect(nextRetryDelay(p, -3)).toBe(700);
  });

  it("is constant with factor 1, rounds fractional factors, and is 0 with minDelayMs 0", () => {
    expect([1, 2, 9].map((a) => nextRetryDelay(policy({ factor: 1, minDelayMs: 250 }), a))).toEqual([250, 250, 250]);
    expect(nextRetryDelay(policy({ factor: 1.5, minDelayMs: 1001 }), 2)).toBe(1502); // 1501.5 rounded
    expect(nextRetryDelay(policy({ minDelayMs: 0 }), 5)).toBe(0);
  });

  it("does not call random", () => {
    let called = 0;
    nextRetryDelay(policy(), 3, () => {
      called++;
      return 0.5;
    });
    expect(called).toBe(0);
  });
});

describe("nextRetryDelay with jitter", () => {
  const p = RetryPolicy.parse({ minDelayMs: 1000, factor: 2, maxDelayMs: 30_000, jitter: true });
  const exp = (a: number) => Math.min(30_000, 1000 * 2 ** (a - 1));

  it("is minDelayMs with random 0 and the exponential delay with random 1", () => {
    for (const a of [1, 2, 3, 4, 5, 6, 10]) {
      expect(nextRetryDelay(p, a, () => 0), `attempt ${a}`).toBe(1000);
      expect(nextRetryDelay(p, a, () => 1), `attempt ${a}`).toBe(exp(a));
    }
  });

  it("spreads linearly in between", () => {
    expect(nextRetryDelay(p, 3, () => 0.5)).toBe(2500); // 1000 + 0.5 * (4000 - 1000)
  });

  it("stays within [minDelayMs, exponential delay] for any random value", () => {
    for (let a = 1; a <= 12; a++) {
      for (const r of [0, 0.001, 0.25, 0.5, 0.75, 0.999, 1]) {
        const d = nextRetryDelay(p, a, () => r);
        expect(d).toBeGreaterThanOrEqual(1000);
        expect(d).toBeLessThanOrEqual(exp(a));
      }
    }
  });

  it("uses Math.random by default and stays in range", () => {
    for (let i = 0; i < 50; i++) {
      const d = nextRetryDelay(p, 4);
      expect(d).toBeGreaterThanOrEqual(1000);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });

  it("never exceeds maxDelayMs for any policy RetryPolicy accepts (minDelayMs above maxDelayMs)", () => {
    // Either the schema refuses minDelayMs > maxDelayMs, or the delay honours the cap as it does without jitter.
    const parsed = RetryPolicy.safeParse({ minDelayMs: 5000, maxDelayMs: 2000, jitter: true });
    if (parsed.success) {
      expect(nextRetryDelay({ ...parsed.data, jitter: false }, 1)).toBe(2000);
      expect(nextRetryDelay(parsed.data, 1, () => 0)).toBeLessThanOrEqual(2000);
    }
  });
});
