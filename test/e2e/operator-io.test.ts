/**
 * Items in and outputs out, and a new job, through the CLI: `run --items` from a file and from a
 * bucket object, the plan limits as flags, `output --out/--format/--failed` to a file and to a
 * bucket object, and `init`, whose job runs at once and whose test passes.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GcsObjectStore } from "../../src/store/gcs.js";
import { findFakeGcs, startFakeGcs, type FakeGcs } from "../contract/fault-proxy.js";
import { ROOT, SLEEPY, cli, parseLines, tempDir } from "./helpers.js";

const found = findFakeGcs();
if (found.missing) {
  if (process.env.CI) throw new Error(`CI must run the bucket cases: ${found.missing}`);
  console.warn(`skipping the gs:// cases of --items and --out: ${found.missing}`);
}

const noRuns = (dir: string) => !existsSync(join(dir, ".shardrun", "runs"));

function itemsFile(dir: string, n: number, extra: string[] = []): string {
  const lines = Array.from({ length: n }, (_, k) => JSON.stringify({ n: k, ms: 1, fail: k % 10 === 3 }));
  const path = join(dir, "items.jsonl");
  writeFileSync(path, [...lines, ...extra].join("\n") + "\n");
  return path;
}

describe("run --items and the plan limits", () => {
  it("takes the items from a JSONL file, each checked by the job's item schema", async () => {
    const dir = tempDir();
    itemsFile(dir, 40, [JSON.stringify({ n: 99, ms: "slow", fail: false })]);
    const r = await cli(["run", SLEEPY, "--local", "--json", "--items", "items.jsonl"], dir);
    expect(r.code).toBe(3);
    const st = JSON.parse(r.stdout) as { runId: string; items: Record<string, number> };
    // 41 lines: 4 fail in run() (3, 13, 23, 33), one fails the schema.
    expect(st.items).toEqual({ total: 41, succeeded: 36, failed: 5, pending: 0 });
    const failures = parseLines<{ reason: string; key: string }>((await cli(["failures", st.runId, "--json"], dir)).stdout);
    expect(failures.filter((f) => f.reason === "schema").map((f) => f.key)).toEqual(["item-99"]);
  });

  it.each([
    [["--items", "missing.jsonl"], "items file missing.jsonl: no such file"],
    [["--items", "https://example.com/items.jsonl"], 'items "https://example.com/items.jsonl": expected a file path, file:///path or gs://bucket/path'],
    [["--arg", "count=100", "--max-items", "50"], "over the limit maxItems=50"],
    [["--arg", "count=100", "--shards", "20", "--max-shards", "10"], "asks for 20 shards, over the limit maxShards=10"],
    [["--max-items", "lots"], '--max-items: expected a whole number from 1 to 1000000000, got "lots"'],
    [["--max-shards", "0"], '--max-shards: expected a whole number from 1 to 1000000, got "0"'],
  ])("refuses %j on one line, with nothing written", async (flags, message) => {
    const dir = tempDir();
    const r = await cli(["run", SLEEPY, "--local", ...flags], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(noRuns(dir)).toBe(true);
  });

  it("a line that is not JSON is refused, naming the file and the line", async () => {
    const dir = tempDir();
    itemsFile(dir, 5, ["{not json"]);
    const r = await cli(["run", SLEEPY, "--local", "--items", "items.jsonl"], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^shardrun: items items.jsonl line 6: not valid JSON/);
    expect(noRuns(dir)).toBe(true);
  });
});

describe("output --out, --format, --failed", () => {
  let dir: string;
  let runId: string;
  beforeAll(async () => {
    dir = tempDir();
    const r = await cli(["run", SLEEPY, "--local", "--json", "--arg", "count=30", "--arg", "sleepMs=1", "--arg", "failEvery=10"], dir);
    expect(r.code).toBe(3);
    runId = (JSON.parse(r.stdout) as { runId: string }).runId;
  });

  it("--out FILE holds what stdout would, whole", async () => {
    const stdout = (await cli(["output", runId], dir)).stdout;
    const r = await cli(["output", runId, "--out", "out.jsonl"], dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(readFileSync(join(dir, "out.jsonl"), "utf8")).toBe(stdout);
    expect(parseLines(stdout)).toHaveLength(27);
  });

  it("--format csv: a row per item, a column per top-level output field; --failed adds the dead letter with its reason", async () => {
    const r = await cli(["output", runId, "--format", "csv", "--failed", "--out", "out.csv"], dir);
    expect(r.code).toBe(0);
    const rows = readFileSync(join(dir, "out.csv"), "utf8").split("\r\n").filter(Boolean);
    expect(rows[0]).toBe("i,key,n,square,status,reason,error,attempts");
    expect(rows).toHaveLength(31);
    expect(rows).toContain("7,item-7,7,49,ok,,,");
    expect(rows.filter((row) => row.includes(",failed,"))).toEqual(["0,item-0,,,failed,error,item 0 fails,2", "10,item-10,,,failed,error,item 10 fails,2", "20,item-20,,,failed,error,item 20 fails,2"]);
    const plain = (await cli(["output", runId, "--format", "csv"], dir)).stdout.split("\r\n").filter(Boolean);
    expect(plain[0]).toBe("i,key,n,square");
    expect(plain).toHaveLength(28);
  });

  it("refuses a bad format or a folder that is not there, and writes nothing", async () => {
    const bad = await cli(["output", runId, "--format", "xml"], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('shardrun: --format: expected one of jsonl, csv, got "xml"\n');
    const nowhere = await cli(["output", runId, "--out", "no/such/folder/out.jsonl"], dir);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain("--out: no folder");
    expect(existsSync(join(dir, "no"))).toBe(false);
  });
});

describe.skipIf(!found.bin)("--items and --out with a bucket (fake-gcs-server)", () => {
  let gcs: FakeGcs;
  beforeAll(async () => {
    gcs = await startFakeGcs(found.bin!);
    await gcs.createBucket("io-e2e");
  });
  afterAll(async () => {
    await gcs?.stop();
  });

  it("reads items from gs://bucket/items.jsonl and writes the output to gs://bucket/out.jsonl", async () => {
    const dir = tempDir();
    const env = { STORAGE_EMULATOR_HOST: gcs.url };
    const bucket = new GcsObjectStore({ bucket: "io-e2e", prefix: "inputs", storage: { apiEndpoint: gcs.url } });
    await bucket.put("items.jsonl", Array.from({ length: 25 }, (_, k) => JSON.stringify({ n: k, ms: 1, fail: false })).join("\n") + "\n");
    const r = await cli(["run", SLEEPY, "--local", "--json", "--items", "gs://io-e2e/inputs/items.jsonl"], dir, env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const st = JSON.parse(r.stdout) as { runId: string; items: Record<string, number> };
    expect(st.items).toEqual({ total: 25, succeeded: 25, failed: 0, pending: 0 });
    const out = await cli(["output", st.runId, "--out", "gs://io-e2e/exports/out.jsonl"], dir, env);
    expect(out.code).toBe(0);
    const exported = await new GcsObjectStore({ bucket: "io-e2e", prefix: "exports", storage: { apiEndpoint: gcs.url } }).get("out.jsonl");
    expect(Buffer.from(exported!.bytes).toString("utf8")).toBe((await cli(["output", st.runId], dir)).stdout);
  });
});

describe("init", () => {
  const name = `init-e2e-${process.pid}`;
  const jobDir = join(ROOT, "jobs", name);
  const testFile = join(ROOT, "test", "jobs", `${name}.test.ts`);
  afterAll(() => {
    rmSync(jobDir, { recursive: true, force: true });
    rmSync(testFile, { force: true });
  });

  it("writes a job and its test: the job runs at once by name, the test passes, and a second init changes nothing", async () => {
    const dir = tempDir();
    const r = await cli(["init", name], dir);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(existsSync(join(jobDir, "index.ts"))).toBe(true);
    expect(existsSync(testFile)).toBe(true);
    expect(r.stdout).toMatch(new RegExp(`^run it: .* run ${name} --local$`, "m"));

    const run = await cli(["run", name, "--local", "--json", "--arg", "count=30"], dir);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const st = JSON.parse(run.stdout) as { runId: string; items: Record<string, number> };
    expect(st.items).toEqual({ total: 30, succeeded: 30, failed: 0, pending: 0 });
    const out = parseLines<{ output: { id: number; words: number } }>((await cli(["output", st.runId], dir)).stdout);
    expect(out.find((l) => l.output.id === 12)?.output.words).toBe(5);

    const vitest = spawnSync(process.execPath, [join(ROOT, "node_modules", "vitest", "vitest.mjs"), "run", testFile], { cwd: ROOT, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    expect(vitest.status, vitest.stdout + vitest.stderr).toBe(0);
    expect(vitest.stdout).toMatch(/Tests\s+3 passed/);

    const before = readFileSync(join(jobDir, "index.ts"), "utf8");
    const again = await cli(["init", name], dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`shardrun: ${jobDir} exists already: choose another name, or edit that job\n`);
    expect(readFileSync(join(jobDir, "index.ts"), "utf8")).toBe(before);
  }, 120_000);

  it("--root writes into another project, where the job imports shardrun by name and runs by path", async () => {
    const project = tempDir("shardrun-project-");
    // A project with shardrun installed: its node_modules has shardrun's packages (zod).
    symlinkSync(join(ROOT, "node_modules"), join(project, "node_modules"));
    const r = await cli(["init", "leads", "--root", project], project);
    expect(r.code).toBe(0);
    const source = readFileSync(join(project, "jobs", "leads", "index.ts"), "utf8");
    expect(source).toContain('from "shardrun"');
    expect(r.stdout).toMatch(/^run it: .* run jobs\/leads\/index\.ts --local$/m);
    const run = await cli(["run", "jobs/leads/index.ts", "--local", "--json", "--arg", "count=5"], project);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { items: { succeeded: number } }).items.succeeded).toBe(5);
  });

  it.each([["Bad_Name"], ["9lives"]])("refuses the name %s on one line", async (bad) => {
    const dir = tempDir();
    mkdirSync(join(dir, "x"));
    const r = await cli(["init", bad], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`shardrun: job name "${bad}" is not valid: expected lowercase letters, digits and dashes, starting with a letter (at most 48)\n`);
  });
});
