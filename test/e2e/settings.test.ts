/**
 * One run-settings schema at both edges: each bad value below is refused by the CLI's flags and
 * by the API's body with the same words, and neither writes a byte to the store.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Launcher } from "../../src/launcher/port.js";
import { tokenAuthenticator } from "../../src/service/auth.js";
import { serviceHarness, storeSnapshot, type Started } from "../support/service-harness.js";
import { ROOT, SLEEPY, cli, tempDir } from "./helpers.js";

const TOKEN = "settings-e2e-token-0123456789";
const START = `/v1/jobs/${encodeURIComponent("test/fixtures/jobs/sleepy.ts")}/runs`;
const RUN = "20991231-000000-sleepy-0000";
const launcher: Launcher = {
  kind: "local",
  launch: async () => {
    throw new Error("nothing may launch");
  },
  getExecution: async () => null,
  cancel: async () => {
    throw new Error("nothing may be cancelled");
  },
};

let cwd: string;
let storeDir: string;
let main: Started;
const harness = serviceHarness({ token: TOKEN, storeDir: () => storeDir, launcher: () => launcher, main: () => main });

beforeAll(async () => {
  cwd = tempDir("shardrun-settings-");
  storeDir = join(cwd, "store");
  // Something in the store, so that "unchanged" compares more than two empty folders.
  const seeded = await cli(["run", SLEEPY, "--local", "--store", storeDir, "--arg", "count=3", "--arg", "sleepMs=1", "--json"], cwd);
  expect(seeded.code).toBe(0);
  main = await harness.start(tokenAuthenticator({ token: TOKEN }), { allowJobPaths: true, root: ROOT });
});

afterAll(async () => {
  await harness.stopAll();
});

const WHOLE_1_10000 = "expected a whole number from 1 to 10000";
const TOLERANCE = "expected a count like 5 or a percentage like 2%";

describe.each([
  ["--tasks", "-1", ["tasks"], -1, WHOLE_1_10000],
  ["--tasks", "0", ["tasks"], 0, WHOLE_1_10000],
  ["--parallelism", "2.5", ["parallelism"], 2.5, WHOLE_1_10000],
  ["--shards", "100001", ["shards"], 100_001, "expected a whole number from 1 to 100000"],
  ["--max-retries", "11", ["maxRetries"], 11, "expected a whole number from 0 to 10"],
  ["--task-timeout", "0", ["taskTimeoutSeconds"], 0, "expected a whole number from 1 to 604800"],
  ["--max-launches", "1001", ["maxLaunches"], 1001, "expected a whole number from 1 to 1000"],
  ["--max-failed-items", "150%", ["maxFailedItems"], "150%", "expected a percentage of at most 100%"],
  ["--max-failed-items", "-3", ["maxFailedItems"], -3, TOLERANCE],
  ["--max-failed-items", "many", ["maxFailedItems"], "many", TOLERANCE],
  ["--budget-tokens", "0", ["budgets", "tokens"], 0, "expected a whole number of 1 or more"],
  ["--budget-usd", "-2", ["budgets", "usd"], -2, "expected an amount of dollars above 0 like 12.50"],
  ["--budget-minutes", "soon", ["budgets", "minutes"], "soon", "expected a whole number of 1 or more"],
] as const)("run %s %s", (flag, text, path, value, message) => {
  it("is refused by `shardrun run` and by POST /v1/jobs/{job}/runs alike, and nothing is written", async () => {
    const before = storeSnapshot(storeDir);
    const r = await cli(["run", SLEEPY, "--local", "--store", storeDir, flag, text], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`shardrun: ${flag}: ${message}, got "${text}"\n`);

    const body = path.length === 2 ? { [path[0]]: { [path[1]!]: value } } : { [path[0]]: value };
    const a = await harness.api("POST", START, { body });
    expect(a.status).toBe(400);
    expect(a.body.error).toEqual({ code: "invalid_argument", field: path.join("."), message: `body: ${path.join(".")}: ${message}, got ${JSON.stringify(value)}` });
    expect(storeSnapshot(storeDir)).toEqual(before);
  });
});

describe.each([
  ["--budget-tokens", "0", "budgetTokens", 0, "expected a whole number of 1 or more"],
  ["--max-launches", "0", "maxLaunches", 0, "expected a whole number from 1 to 1000"],
  ["--tasks", "10001", "tasks", 10_001, WHOLE_1_10000],
] as const)("rerun %s %s", (flag, text, field, value, message) => {
  it("is refused by `shardrun rerun` and by POST /v1/runs/{id}:rerun alike, before the run is looked up", async () => {
    const before = storeSnapshot(storeDir);
    const r = await cli(["rerun", RUN, "--local", "--store", storeDir, flag, text], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`shardrun: ${flag}: ${message}, got "${text}"\n`);
    const a = await harness.api("POST", `/v1/runs/${RUN}:rerun`, { body: { [field]: value } });
    expect(a.status).toBe(400);
    expect(a.body.error.message).toBe(`body: ${field}: ${message}, got ${JSON.stringify(value)}`);
    expect(storeSnapshot(storeDir)).toEqual(before);
  });
});

it("shard count and items per shard exclude each other at both edges", async () => {
  const r = await cli(["run", SLEEPY, "--local", "--store", storeDir, "--shards", "2", "--items-per-shard", "3"], cwd);
  expect(r.stderr).toBe("shardrun: --items-per-shard: give a shard count or items per shard, not both\n");
  const a = await harness.api("POST", START, { body: { shards: 2, itemsPerShard: 3 } });
  expect(a.body.error.message).toBe("body: itemsPerShard: give a shard count or items per shard, not both");
});
