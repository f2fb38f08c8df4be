/** A task process stopping on SIGTERM and at its deadline: it checkpoints, releases, and asks for a retry. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rangeCount } from "../../src/core/ranges.js";
import { ExitCode } from "../../src/core/errors.js";
import { SLEEPY, sleep, tempDir } from "./helpers.js";
import { planSingleShard, startWorker } from "./worker-harness.js";

describe("task runtime signals and deadline", () => {
  it("on SIGTERM commits what finished, releases the lease and exits 75; the next attempt resumes", async () => {
    const h = await planSingleShard(SLEEPY, { count: "60", sleepMs: "100" }, join(tempDir(), "store"));
    const first = startWorker(h, 0);
    for (let i = 0; i < 100 && !(await h.readCp())?.owner; i++) await sleep(50);
    await sleep(800);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(ExitCode.retryTask);
    const cp = (await h.readCp())!;
    expect(cp.owner).toBeNull(); // released: anyone may resume at once
    expect(cp.state).toBe("open");
    const committed = rangeCount(cp.done);
    expect(committed).toBeGreaterThan(0);
    expect(committed).toBeLessThan(60);

    const second = startWorker(h, 1);
    expect(await second.exited).toBe(ExitCode.ok);
    const done = (await h.readCp())!;
    expect(done.state).toBe("done");
    expect(rangeCount(done.done)).toBe(60);
    // The second attempt ran only what the first had not committed.
    expect(done.executions - cp.executions).toBeLessThanOrEqual(60 - committed + 4 /* in flight at SIGTERM */);
  });

  it("stops taking items before SHARDRUN_DEADLINE_S and exits 75 with its progress committed", async () => {
    const h = await planSingleShard(SLEEPY, { count: "200", sleepMs: "100" }, join(tempDir(), "store"));
    const started = Date.now();
    const w = startWorker(h, 0, { SHARDRUN_DEADLINE_S: "3" });
    expect(await w.exited).toBe(ExitCode.retryTask);
    // It ended by itself before the deadline, which a launcher would have enforced with SIGTERM.
    expect(Date.now() - started).toBeLessThan(3000 + 1500 /* process start and exit, on a slow machine */);
    const cp = (await h.readCp())!;
    expect(cp.owner).toBeNull();
    expect(rangeCount(cp.done)).toBeGreaterThan(0);
    expect(w.log()).toContain('"outcome":"stopped"');
  });

  it("on SIGTSTP writes a checkpoint and keeps working", async () => {
    const h = await planSingleShard(SLEEPY, { count: "100", sleepMs: "50" }, join(tempDir(), "store"));
    const w = startWorker(h, 0);
    for (let i = 0; i < 100 && !(await h.readCp())?.owner; i++) await sleep(50);
    await sleep(1200);
    w.child.kill("SIGTSTP");
    await sleep(300);
    expect(w.log()).toContain("SIGTSTP: checkpointing");
    expect(await w.exited).toBe(ExitCode.ok);
    expect(rangeCount((await h.readCp())!.done)).toBe(100);
  });
});
