/**
 * Issue 5's done-when, local part: a schedule every minute fired by the local cron (what
 * `shardrun serve --local` runs) starts one run per minute; a duplicate fire of a minute, and a
 * restarted cron firing the same minute again, start none. The runs then go to the end on real
 * worker processes through the local launcher.
 *
 * The cron runs on real timers with a clock set a second before a minute turns, so a test waits
 * about a second per fire instead of a minute.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { driveRun } from "../../src/orchestrator/drive.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { listRunSummaries as listRuns } from "../../src/orchestrator/run-list.js";
import { startLocalCron } from "../../src/schedules/cron.js";
import { fireSchedule } from "../../src/schedules/fire.js";
import { loadSchedules } from "../../src/schedules/load.js";
import { scheduledRunId, type LoadedSchedule } from "../../src/schedules/schedule.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { WORKER_COMMAND, compiledLocalLauncher } from "../contract/launcher-contract.js";
import { ROOT, sleep } from "./helpers.js";

const FIXTURE = join(ROOT, "test", "fixtures", "jobs", "every-minute.ts");
const MINUTE_1 = new Date("2026-11-22T02:01:00.000Z");
const MINUTE_2 = new Date("2026-11-22T02:02:00.000Z");

describe("a schedule every minute, fired by the local cron", () => {
  let dir: string;
  let store: FsObjectStore;
  let launcher: InstanceType<Awaited<ReturnType<typeof compiledLocalLauncher>>["LocalLauncher"]>;
  let dispose: () => Promise<void>;
  let schedules: LoadedSchedule[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "shardrun-schedules-e2e-"));
    store = new FsObjectStore(join(dir, "store"));
    const compiled = await compiledLocalLauncher();
    dispose = compiled.dispose;
    launcher = new compiled.LocalLauncher({ stateDir: join(dir, "executions"), command: WORKER_COMMAND, killGraceSeconds: 2 });
    schedules = await loadSchedules({ jobs: [FIXTURE], cwd: ROOT });
  });
  afterAll(async () => {
    await dispose?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Runs the local cron on a clock that reads `at` now, until it has fired once; returns what it fired. */
  async function cronFiresOnce(at: Date): Promise<{ runId: string; created: boolean; scheduledTime: string }> {
    const offset = at.getTime() - Date.now();
    const results: { runId: string; created: boolean; scheduledTime: string }[] = [];
    const cron = startLocalCron({
      store,
      launcher,
      schedules,
      now: () => new Date(Date.now() + offset),
      fire: async (o) => {
        const r = await fireSchedule(o);
        results.push(r);
        return r;
      },
    });
    expect((await cron.ready).map((s) => s.name)).toEqual(["every-minute-tick"]);
    for (let waited = 0; !results.length; waited += 50) {
      if (waited > 20_000) throw new Error("the local cron did not fire");
      await sleep(50);
    }
    cron.stop();
    await cron.idle();
    return results[0]!;
  }

  it("two minutes make two runs; a duplicate fire and a restarted cron make none; both runs succeed", async () => {
    const first = await cronFiresOnce(new Date(MINUTE_1.getTime() - 1000));
    expect(first).toMatchObject({ created: true, scheduledTime: MINUTE_1.toISOString(), runId: scheduledRunId("every-minute", "every-minute-tick", MINUTE_1) });
    const second = await cronFiresOnce(new Date(MINUTE_2.getTime() - 1000));
    expect(second).toMatchObject({ created: true, scheduledTime: MINUTE_2.toISOString() });
    expect(second.runId).not.toBe(first.runId);

    // Cloud Scheduler retrying minute 1, and the server restarted a moment before minute 2 fired.
    const duplicate = await fireSchedule({ store, launcher, schedules, scheduleName: "every-minute-tick", scheduledTime: MINUTE_1 });
    expect(duplicate).toEqual({ runId: first.runId, created: false, job: "every-minute", scheduledTime: MINUTE_1.toISOString() });
    const restarted = await cronFiresOnce(new Date(MINUTE_2.getTime() - 500));
    expect(restarted).toMatchObject({ created: false, runId: second.runId });

    const runs = await listRuns(store);
    expect(runs.map((r) => r.runId).sort()).toEqual([first.runId, second.runId].sort());
    expect(runs.every((r) => r.trigger === "schedule:every-minute-tick" && r.items === 4)).toBe(true);

    for (const runId of [first.runId, second.runId]) {
      const status = await driveRun({ store, launcher, runId, pollMs: 100 });
      expect(status.state).toBe("succeeded");
      expect(status.launches).toHaveLength(1); // the fire's launch, not a second one
      const lines: string[] = [];
      for await (const line of mergedOutput(store, runId)) lines.push(line);
      expect(lines.map((l) => (JSON.parse(l) as { output: { square: number } }).output.square).sort((a, b) => a - b)).toEqual([0, 1, 4, 9]);
    }
  });
});
