/** What the CLI prints for people: hints written as the CLI was invoked, progress bars, colours. */
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import type { RunStatus } from "../../src/core/status.js";
import { colorsFor, formatDuration } from "../../src/cli/format.js";
import { cliPrefix, commandHint, storeFlag } from "../../src/cli/hints.js";
import { ProgressBars } from "../../src/cli/progress-bars.js";

const RUN = "20261122-020000-demo-ab12";
const ESC = "\x1b";
// Colour codes are SGR sequences ending in "m"; cursor moves and line clears are not colours.
const COLOUR = /\x1b\[[0-9;]*m/;

function folder(): string {
  return mkdtempSync(join(tmpdir(), "shardrun-hints-"));
}

describe("cliPrefix", () => {
  const cwd = folder();
  const script = join(cwd, "bin", "shardrun.js");
  mkdirSync(join(cwd, "bin"));
  writeFileSync(script, "#!/usr/bin/env node\n");
  chmodSync(script, 0o755);
  const emptyPath = { PATH: folder() };

  it("says npx shardrun under npx, npm exec or an npm script", () => {
    expect(cliPrefix({ env: { npm_command: "exec", ...emptyPath }, cwd, script })).toBe("npx shardrun");
    expect(cliPrefix({ env: { npm_lifecycle_event: "npx", ...emptyPath }, cwd, script })).toBe("npx shardrun");
    expect(cliPrefix({ env: { npm_command: "run-script", npm_lifecycle_event: "nightly", ...emptyPath }, cwd, script })).toBe("npx shardrun");
  });

  it("says shardrun when it is on PATH", () => {
    const bin = folder();
    writeFileSync(join(bin, "shardrun"), "#!/bin/sh\n");
    chmodSync(join(bin, "shardrun"), 0o755);
    expect(cliPrefix({ env: { PATH: bin }, cwd, script })).toBe("shardrun");
  });

  it("else names the script by its path, with node when it is not executable", () => {
    expect(cliPrefix({ env: emptyPath, cwd, script })).toBe("./bin/shardrun.js");
    expect(cliPrefix({ env: emptyPath, cwd: folder(), script })).toBe(script);
    chmodSync(script, 0o644);
    expect(cliPrefix({ env: emptyPath, cwd, script })).toBe("node bin/shardrun.js");
    chmodSync(script, 0o755);
  });
});

describe("storeFlag", () => {
  const cwd = "/home/me/project";
  it("is empty for the store a bare command opens", () => {
    expect(storeFlag({ env: {}, cwd, storeUrl: pathToFileURL(join(cwd, ".shardrun")).href })).toBe("");
    expect(storeFlag({ env: { SHARDRUN_STORE_URL: "gs://b/p" }, cwd, storeUrl: "gs://b/p" })).toBe("");
  });

  it("names any other store, relative when below the folder, quoted when it must be", () => {
    expect(storeFlag({ env: {}, cwd, storeUrl: "gs://b/p" })).toBe(" --store gs://b/p");
    expect(storeFlag({ env: {}, cwd, storeUrl: pathToFileURL(join(cwd, "runs")).href })).toBe(" --store runs");
    expect(storeFlag({ env: {}, cwd, storeUrl: pathToFileURL("/tmp/my store").href })).toBe(" --store '/tmp/my store'");
    expect(storeFlag({ env: { SHARDRUN_STORE_URL: "gs://b/p" }, cwd, storeUrl: pathToFileURL(join(cwd, ".shardrun")).href })).toBe(" --store .shardrun");
  });

  it("makes one command line of both", () => {
    const hint = commandHint({ env: { npm_command: "exec" }, cwd, storeUrl: "gs://b/p" }, "rerun", RUN, "--failed-items");
    expect(hint).toBe(`npx shardrun rerun ${RUN} --failed-items --store gs://b/p`);
  });
});

function status(over: Partial<RunStatus["items"]> = {}, shards = { total: 4, done: 1, running: 2 }): RunStatus {
  const items = { total: 40, succeeded: 10, failed: 2, pending: 28, ...over };
  return { runId: RUN, job: "demo", state: "running", createdAt: "2026-11-22T02:00:00.000Z", items, shards, launches: [], executions: 12, usage: { tokens: 0, usd: 0 }, budgets: {}, shardList: [] };
}

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 100, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream };
}

describe("ProgressBars", () => {
  it("without a terminal writes plain lines, no escape codes, at most every 2 s and only on change", () => {
    const { chunks, stream } = sink(false);
    let t = 0;
    const bars = new ProgressBars({ stream, env: { FORCE_COLOR: "1" }, now: () => t });
    bars.update(status(), null);
    t = 500;
    bars.update(status({ succeeded: 11, pending: 27 }), null);
    t = 2500;
    bars.update(status({ succeeded: 12, pending: 26 }), null);
    t = 5000;
    bars.update(status({ succeeded: 12, pending: 26 }), null);
    bars.stop();
    expect(chunks).toEqual(["progress: 1/4 shards, 10 ok, 2 failed, 28 left, elapsed 0s\n", "progress: 1/4 shards, 12 ok, 2 failed, 26 left, elapsed 3s\n"]);
    expect(chunks.join("")).not.toContain(ESC);
  });

  it("on a terminal draws shard and item bars with an ETA, and the tasks", () => {
    const { chunks, stream } = sink(true);
    const bars = new ProgressBars({ stream, env: {} });
    bars.update(status(), { state: "running", taskCount: 2, running: 2, succeeded: 0, failed: 0 } as never);
    bars.stop();
    const text = chunks.join("");
    expect(text).toMatch(/shards \S*#{6}-{18}\S*\s+25% 1\/4/);
    expect(text).toContain("10 ok,");
    expect(text).toContain("28 left  ETA");
    expect(text).toContain("tasks 2 running, 0/2 done");
    expect(text).toMatch(COLOUR);
  });

  it("honours NO_COLOR on a terminal", () => {
    const { chunks, stream } = sink(true);
    const bars = new ProgressBars({ stream, env: { NO_COLOR: "1", FORCE_COLOR: "1" } });
    bars.update(status(), null);
    bars.stop();
    expect(chunks.join("")).toContain("shards ");
    expect(chunks.join("")).not.toMatch(COLOUR);
  });
});

describe("formats", () => {
  it("formats durations", () => {
    expect([formatDuration(7000), formatDuration(65_000), formatDuration(7_380_000), formatDuration(NaN)]).toEqual(["7s", "1m05s", "2h03m", "--"]);
  });

  it("colours only a terminal without NO_COLOR, or when forced", () => {
    expect(colorsFor({ isTTY: false }, {}).red("x")).toBe("x");
    expect(colorsFor({ isTTY: true }, { NO_COLOR: "1" }).red("x")).toBe("x");
    expect(colorsFor({ isTTY: true }, {}).red("x")).toMatch(COLOUR);
    expect(colorsFor({ isTTY: false }, { FORCE_COLOR: "1" }).red("x")).toMatch(COLOUR);
  });
});
