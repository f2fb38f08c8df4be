/** The pure parts of the simulated Cloud Storage: the sliding second, the ramp, the latency draws. */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/core/time.js";
import { lognormalSampler, RampedCapacity, SlidingWindow } from "../../src/store/sim-limits.js";

describe("SlidingWindow", () => {
  it("counts the events of the last second and remembers its peak", () => {
    const window = new SlidingWindow(1000);
    for (const t of [0, 100, 200, 900]) window.add(t);
    expect(window.count(999)).toBe(4);
    expect(window.count(1000)).toBe(3); // (0, 1000]: the event at 0 has left
    expect(window.add(1950)).toBe(1); // only 1950 itself: 100, 200 and 900 are past
    expect(window.peak).toBe(4);
  });

  it("stays exact over a long run", () => {
    const window = new SlidingWindow(1000);
    for (let t = 0; t < 100_000; t += 10) window.add(t);
    expect(window.count(99_990)).toBe(100);
    expect(window.peak).toBe(100);
  });
});

describe("RampedCapacity", () => {
  it("doubles over one doubling time of demand that keeps up with it, and stops where demand stops", () => {
    const ramp = new RampedCapacity({ initialPerSecond: 1000, doublingMs: 20 * 60_000 });
    for (let t = 0; t <= 20 * 60_000; t += 1000) ramp.at(t, ramp.current);
    expect(ramp.current).toBeCloseTo(2000, 6);
    // Demand of 1,500 a second lifts it only while that is at least half of it: to 3,000 at most.
    for (let t = 20 * 60_000; t <= 80 * 60_000; t += 1000) ramp.at(t, 1500);
    expect(ramp.current).toBeGreaterThan(2999);
    expect(ramp.current).toBeLessThan(3003);
  });

  it("holds while demand is below half of it", () => {
    const ramp = new RampedCapacity({ initialPerSecond: 1000 });
    for (let t = 0; t <= 60 * 60_000; t += 1000) ramp.at(t, 499);
    expect(ramp.current).toBe(1000);
  });

  it("refuses a capacity or a doubling time that is not above 0", () => {
    expect(() => new RampedCapacity({ initialPerSecond: 0 })).toThrow("Expected `initialPerSecond` to be a number above 0");
    expect(() => new RampedCapacity({ initialPerSecond: 1, doublingMs: -1 })).toThrow("Expected `doublingMs` to be a number above 0");
  });
});

describe("lognormalSampler", () => {
  it("draws with the median and 99th percentile it is given, replayably from a seed", () => {
    const draw = (seed: number) => {
      const sample = lognormalSampler({ medianMs: 30, p99Ms: 150 }, seededRandom(seed));
      return Array.from({ length: 50_000 }, sample).sort((a, b) => a - b);
    };
    const sorted = draw(3);
    expect(sorted[25_000]).toBeGreaterThan(29);
    expect(sorted[25_000]).toBeLessThan(31);
    expect(sorted[49_500]).toBeGreaterThan(140);
    expect(sorted[49_500]).toBeLessThan(160);
    expect(sorted[0]).toBeGreaterThan(0);
    expect(draw(3)).toEqual(sorted);
  });

  it("answers 0 for a zero latency and refuses a p99 below the median", () => {
    expect(lognormalSampler({ medianMs: 0, p99Ms: 0 }, Math.random)()).toBe(0);
    expect(() => lognormalSampler({ medianMs: 50, p99Ms: 10 }, Math.random)).toThrow("0 <= medianMs <= p99Ms");
  });
});
