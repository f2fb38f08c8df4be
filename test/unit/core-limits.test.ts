import { describe, expect, it } from "vitest";
import { WINDOW_MARGIN, taskShare, waitBeforeStart } from "../../src/core/limits.js";
import { Limiter } from "../../src/worker/limiter.js";

const maxInWindow = (times: number[], windowMs: number) => {
  let max = 0;
  for (const t of times) max = Math.max(max, times.filter((u) => u >= t && u < t + windowMs).length);
  return max;
};

describe("run-wide limits shared over tasks", () => {
  it("splits a rate over the running tasks so that the sum never exceeds it", () => {
    // Windows are widened by the margin for the delay between letting a request go and its arrival.
    const w = (ms: number) => Math.ceil(ms * (1 + WINDOW_MARGIN));
    expect(taskShare({ perSecond: 20 }, 4)).toEqual({ starts: 5, windowMs: w(1000), concurrent: Number.POSITIVE_INFINITY });
    expect(taskShare({ perSecond: 10 }, 3)).toMatchObject({ starts: 3, windowMs: w(1000) }); // 9 <= 10
    expect(taskShare({ perSecond: 2 }, 4)).toMatchObject({ starts: 1, windowMs: w(2000) });
    expect(taskShare({ concurrent: 8 }, 4).concurrent).toBe(2);
    expect(taskShare({ concurrent: 2 }, 4).concurrent).toBe(1);
    expect(taskShare({}, 4).starts).toBe(0);
  });

  it("waits until the oldest start in the window leaves it", () => {
    const share = { starts: 2, windowMs: 1000, concurrent: Infinity };
    expect(waitBeforeStart(share, [], 5000)).toBe(0);
    expect(waitBeforeStart(share, [4500], 5000)).toBe(0);
    expect(waitBeforeStart(share, [4200, 4500], 5000)).toBe(200);
    expect(waitBeforeStart(share, [3000, 4200, 4500], 5000)).toBe(200);
    expect(waitBeforeStart({ ...share, starts: 0 }, [4999, 4999, 4999], 5000)).toBe(0);
  });

  it("spreads a task's starts evenly over the window instead of letting them go in a burst", () => {
    const share = { starts: 2, windowMs: 1000, concurrent: Infinity };
    expect(waitBeforeStart(share, [4800], 5000)).toBe(300);
    expect(waitBeforeStart({ ...share, starts: 4 }, [4900], 5000)).toBe(150);
    expect(waitBeforeStart({ ...share, starts: 4 }, [4700], 5000)).toBe(0);
  });

  it("a limiter never starts more than its share in any window, and caps calls in flight", async () => {
    const limiter = new Limiter({ starts: 3, windowMs: 200, concurrent: 2 });
    const starts: number[] = [];
    let active = 0;
    let maxActive = 0;
    await Promise.all(
      Array.from({ length: 12 }, () =>
        limiter.run(async () => {
          starts.push(Date.now());
          maxActive = Math.max(maxActive, ++active);
          await new Promise((r) => setTimeout(r, 30));
          active--;
        }),
      ),
    );
    expect(starts).toHaveLength(12);
    // The test stamps a start a little after the limiter admits it; allow for that, not more.
    expect(maxInWindow(starts, 190)).toBeLessThanOrEqual(3);
    expect(maxInWindow(starts, 400)).toBeGreaterThanOrEqual(3); // it is a limit, not a stall
    expect(maxActive).toBeLessThanOrEqual(2);
  });

  it("gives up waiting when the item is aborted", async () => {
    const limiter = new Limiter({ starts: 1, windowMs: 10_000, concurrent: Infinity });
    await limiter.run(() => 1);
    const ac = new AbortController();
    let ran = false;
    const waiting = limiter.run(() => (ran = true), ac.signal);
    setTimeout(() => ac.abort(new Error("stop")), 20);
    const started = Date.now();
    await expect(waiting).rejects.toThrow("stop");
    expect(Date.now() - started).toBeLessThan(5_000); // not the 10 s window
    expect(ran).toBe(false);
  });
});
