/**
 * The local launcher's waitForChange wakes for a change of the status file that happened after
 * the caller's last getExecution but before the watch began (the driver looks, then waits: a
 * supervisor that finished during the look has no event left to send).
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalLauncher } from "../../src/launcher/local.js";
import type { LocalStatus } from "../../src/launcher/local-model.js";

const NAME = "wait-test-abcde";
let dir: string | undefined;

afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Writes the status as the supervisor does: a new file renamed over the old one. */
function writeStatus(stateDir: string, state: LocalStatus["state"], taskState: LocalStatus["tasks"][number]["state"]): void {
  const status: LocalStatus = {
    name: NAME,
    state,
    supervisorPid: process.pid,
    taskCount: 1,
    startedAt: new Date().toISOString(),
    tasks: [{ index: 0, state: taskState, attempts: 1, timedOut: 0 }],
  };
  const tmp = join(stateDir, `${NAME}.json.${Math.random().toString(36).slice(2)}.tmp`);
  writeFileSync(tmp, JSON.stringify(status));
  renameSync(tmp, join(stateDir, `${NAME}.json`));
}

describe("LocalLauncher.waitForChange", () => {
  it("returns at once when the status changed since the last getExecution", async () => {
    dir = mkdtempSync(join(tmpdir(), "shardrun-wait-"));
    const launcher = new LocalLauncher({ stateDir: dir });
    writeStatus(dir, "running", "running");
    expect((await launcher.getExecution(NAME))?.state).toBe("running");
    // Two changes, as a task's end and the execution's end: the first frees the inode the
    // launcher saw, which the second may reuse.
    writeStatus(dir, "running", "succeeded");
    writeStatus(dir, "succeeded", "succeeded");
    let woke = false;
    // A timeout longer than the test's own: only noticing the change lets this finish.
    await launcher.waitForChange(NAME, 3_600_000).then(() => (woke = true));
    expect(woke).toBe(true);
    expect((await launcher.getExecution(NAME))?.state).toBe("succeeded");
  }, 20_000);

  it("waits for the timeout when nothing changed", async () => {
    dir = mkdtempSync(join(tmpdir(), "shardrun-wait-"));
    const launcher = new LocalLauncher({ stateDir: dir });
    writeStatus(dir, "running", "running");
    await launcher.getExecution(NAME);
    const stop = new AbortController();
    const waiting = launcher.waitForChange(NAME, 60_000, stop.signal);
    const outcome = await Promise.race([waiting.then(() => "woke"), new Promise<string>((resolve) => setTimeout(() => resolve("still waiting"), 300))]);
    expect(outcome).toBe("still waiting");
    stop.abort();
    await waiting;
  });
});
