import { describe, expect, it } from "vitest";
import { BUCKET_SHARE, launchCadence, pacedWriteGapMs, startSpreadMs } from "../../src/core/cadence.js";

const GCS = { objectWriteGapMs: 1000, writesPerSecond: 1000 };
const FOLDER = { objectWriteGapMs: 0, writesPerSecond: Infinity };

describe("startSpreadMs", () => {
  it("spreads nothing on a store without a bucket rate, or when the tasks' first writes fit in a second", () => {
    expect(startSpreadMs(FOLDER, 10_000)).toBe(0);
    expect(startSpreadMs(GCS, 100)).toBe(0);
  });

  it("spreads first writes so that they stay within the tasks' share of the bucket, growing with the tasks", () => {
    const spread1k = startSpreadMs(GCS, 1000);
    const spread10k = startSpreadMs(GCS, 10_000);
    expect(spread1k).toBeGreaterThan(1000);
    expect(spread10k).toBe(spread1k * 10);
    // Three writes a task over the spread: within BUCKET_SHARE of the bucket's rate.
    expect((1000 * 3) / (spread1k / 1000)).toBeLessThanOrEqual(GCS.writesPerSecond * BUCKET_SHARE);
  });
});

describe("launchCadence", () => {
  it("slows progress writes as tasks grow so that all of them stay within the bucket share", () => {
    for (const tasks of [10, 100, 1000, 10_000]) {
      const c = launchCadence(GCS, tasks);
      expect((tasks * 1.5 * 1000) / c.progressMs).toBeLessThanOrEqual(GCS.writesPerSecond * BUCKET_SHARE + 1e-9);
      expect(c.leaseTtlMs).toBeGreaterThanOrEqual(6 * c.progressMs);
    }
    expect(launchCadence(FOLDER, 10_000).progressMs).toBe(100);
  });

  it("paces rewrites of one object a little over the store's gap, and not at all on a folder", () => {
    expect(pacedWriteGapMs(GCS)).toBeGreaterThan(1000);
    expect(pacedWriteGapMs(FOLDER)).toBe(0);
  });
});
