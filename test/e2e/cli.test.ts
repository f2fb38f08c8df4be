/** The CLI's answers to people: help everywhere, one clear line for every mistake, no state changed. */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { FsObjectStore } from "../../src/store/fs.js";
import { ROOT, SLEEPY, cli, parseLines, tempDir } from "./helpers.js";

let cwd: string;
beforeAll(() => {
  cwd = tempDir();
});

const noRunsWritten = (dir: string) => !existsSync(join(dir, ".shardrun", "runs")) || readdirSync(join(dir, ".shardrun", "runs")).length === 0;

describe("shardrun CLI", () => {
  it.each(["run", "status", "runs", "output", "rerun", "failures", "cancel", "watch", "logs", "init", "verify", "deploy", "doctor", "serve", "schedules", "worker"])("has help with examples for %s, as --help and as help <command>", async (command) => {
    const r = await cli([command, "--help"], cwd);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: shardrun ${command}`);
    expect(r.stdout).toMatch(/Examples:\n  \$ (\S+=\S+ )*shardrun /);
    const h = await cli(["help", command], cwd);
    expect(h.code).toBe(0);
    expect(h.stdout).toBe(r.stdout);
  });

  it("prints its version", async () => {
    const r = await cli(["--version"], cwd);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("says what --tasks expects in one line", async () => {
    const r = await cli(["run", SLEEPY, "--local", "--tasks", "-1"], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('shardrun: --tasks: expected a whole number from 1 to 10000, got "-1"\n');
    expect(noRunsWritten(cwd)).toBe(true);
  });

  it("lists commands in its main help", async () => {
    const r = await cli(["--help"], cwd);
    expect(r.code).toBe(0);
    for (const c of ["run", "status", "runs", "output", "rerun", "failures", "cancel", "watch", "logs", "init", "worker"]) expect(r.stdout).toContain(`  ${c}`);
    // The one exit-code table, and the state words.
    expect(r.stdout).toMatch(/^ {2}130 {2}Ctrl-C: stopped watching; the run goes on/m);
    expect(r.stdout).toMatch(/^ {4}5 {2}the run was cancelled$/m);
    expect(r.stdout).toContain("Run states: planning, pending, running, succeeded, partial, failed, cancelled, budget_exhausted");
  });

  it("names the missing job and where jobs are looked up", async () => {
    const r = await cli(["run", "no-such-job", "--local"], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain('no job named "no-such-job"');
    expect(r.stderr).toContain(join(ROOT, "jobs"));
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(noRunsWritten(cwd)).toBe(true);
  });

  it("reports an invalid job definition with the field path", async () => {
    const r = await cli(["run", join(ROOT, "test/fixtures/jobs/bad-definition.ts"), "--local"], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid job definition "bad-definition": concurrency: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(noRunsWritten(cwd)).toBe(true);
  });

  it.each([
    [["--tasks", "abc"], "--tasks: expected a whole number"],
    [["--shards", "0"], "--shards: expected a whole number from 1"],
    [["--bogus"], "run: unknown option '--bogus'"],
    [["--arg", "count=many"], "arg.count"],
    [["--arg", "nokey"], "--arg: expected key=value"],
    [["--arg", "cout=5"], 'job "sleepy" has no argument "cout"; its arguments: count,'],
    [["--shards", "2", "--items-per-shard", "3"], "not both"],
  ])("rejects bad flags %j with a message naming them", async (flags, message) => {
    const r = await cli(["run", SLEEPY, "--local", ...flags], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(noRunsWritten(cwd)).toBe(true);
  });

  it("without --local, names the Cloud Run settings it lacks and writes nothing", async () => {
    const r = await cli(["run", SLEEPY], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Cloud Run needs --project");
    expect(r.stderr).toContain("--region");
    expect(r.stderr).toContain("--local");
    expect(noRunsWritten(cwd)).toBe(true);
  });

  it("refuses Cloud Run tasks with a local folder store", async () => {
    const r = await cli(["run", SLEEPY, "--project", "p", "--region", "r"], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cannot reach a local folder store");
    expect(noRunsWritten(cwd)).toBe(true);
  });

  it("deploy --dry-run prints the Cloud Run job it would create, without a project", async () => {
    const r = await cli(["deploy", "--dry-run", "--json"], cwd);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { dryRun: boolean; results: { job: string; action: string; compared: boolean; resource: { template: { taskCount: number; template: { containers: { env: { name: string }[] }[] } } } }[] };
    expect(out.dryRun).toBe(true);
    const docs = out.results.find((x) => x.job === "summarize-docs")!;
    expect(docs).toMatchObject({ action: "create", compared: false });
    expect(docs.resource.template.template.containers[0]!.env.map((e) => e.name)).toContain("SHARDRUN_LOG_FORMAT");
  });

  it("deploy --dry-run with a project and region but no credentials compares nothing and fills the manifest's placeholders in", async () => {
    const home = tempDir("shardrun-home-");
    const r = await cli(["deploy", "--dry-run", "--json", "--project", "p", "--region", "europe-west1"], ROOT, { HOME: home, CLOUDSDK_CONFIG: join(home, "gcloud"), GOOGLE_APPLICATION_CREDENTIALS: "" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const docs = (JSON.parse(r.stdout) as { results: { job: string; compared: boolean; resource: { name?: string; template: { template: { serviceAccount?: string; containers: { image: string }[] } } } }[] }).results.find((x) => x.job === "summarize-docs")!;
    expect(docs.compared).toBe(false);
    expect(docs.resource.template.template.containers[0]!.image).toBe("europe-west1-docker.pkg.dev/p/shardrun/shardrun:latest");
    expect(docs.resource.template.template.serviceAccount).toBe("shardrun-worker@p.iam.gserviceaccount.com");
  });

  it.each([["status"], ["output"], ["rerun"]])("%s rejects a malformed run id", async (command) => {
    const r = await cli([command, "../../etc", "--local"].slice(0, command === "rerun" ? 3 : 2), cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('run id "../../etc" is not valid');
  });

  it("says when a run does not exist", async () => {
    const r = await cli(["status", "20260101-000000-sleepy-abcd"], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no run 20260101-000000-sleepy-abcd");
  });

  it("rejects an unknown command, and an unknown flag of any command, in one line", async () => {
    const r = await cli(["frobnicate"], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    for (const argv of [["status", "20260101-000000-sleepy-abcd", "--verbose"], ["runs", "--all"], ["schedules", "list", "--bogus"]]) {
      const u = await cli(argv, cwd);
      expect(u.code, argv.join(" ")).toBe(2);
      expect(u.stderr.trim().split("\n"), argv.join(" ")).toHaveLength(1);
      expect(u.stderr).toContain("unknown option");
    }
  });

  it("prints hints that run as printed: the script by its path, with the store flag", async () => {
    const dir = tempDir();
    // No npm in the environment and no shardrun on PATH: the hint names the script itself.
    const env = { npm_command: "", npm_lifecycle_event: "", npm_execpath: "", PATH: join(ROOT, "node_modules", ".bin") };
    const r = await cli(["run", SLEEPY, "--local", "--store", "runs-here", "--arg", "count=12", "--arg", "sleepMs=1", "--arg", "failEvery=5"], dir, env);
    expect(r.code).toBe(3);
    const hint = (label: string) => new RegExp(`^  ${label}\\s+(.+)$`, "m").exec(r.stdout)?.[1];
    const output = hint("outputs")!;
    expect(output).toMatch(new RegExp(`^${join(ROOT, "bin", "shardrun.js")} output \\S+ --store runs-here$`));
    const printed = spawnSync("/bin/sh", ["-c", output], { cwd: dir, env: { ...process.env, ...env }, encoding: "utf8" });
    expect(printed.status).toBe(0);
    expect(parseLines(printed.stdout)).toHaveLength(9);
    const failures = /^  failed\s+see why: (.+)$/m.exec(r.stdout)?.[1];
    expect(failures).toMatch(/ failures \S+ --store runs-here$/);
    const why = spawnSync("/bin/sh", ["-c", failures!], { cwd: dir, env: { ...process.env, ...env }, encoding: "utf8" });
    expect(why.status).toBe(0);
    expect(why.stdout).toContain("3 failed items in 1 group");
    const rerun = /^\s+retry the 3 retriable: (.+)$/m.exec(r.stdout)?.[1];
    expect(rerun).toMatch(/ rerun \S+ --local --failed-items --store runs-here$/);
    const again = spawnSync("/bin/sh", ["-c", `${rerun} --json`], { cwd: dir, env: { ...process.env, ...env }, encoding: "utf8" });
    expect(again.status).toBe(3); // the same items fail again: it ran
    expect(JSON.parse(again.stdout).items).toMatchObject({ total: 12, failed: 3 });
  });

  it("writes hints as npx shardrun when run through npx", async () => {
    const dir = tempDir();
    const r = await cli(["run", SLEEPY, "--local", "--arg", "count=3", "--arg", "sleepMs=1"], dir, { npm_command: "exec", npm_lifecycle_event: "npx" });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^  outputs\s+npx shardrun output \S+$/m);
  });

  it("runs a job, then status, runs and output agree", async () => {
    const dir = tempDir();
    const r = await cli(["run", SLEEPY, "--local", "--arg", "count=25", "--arg", "sleepMs=1", "--tasks", "2", "--json"], dir);
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: Record<string, number>; shards: Record<string, number>; launches: unknown[]; executions: number };
    expect(status.state).toBe("succeeded");
    expect(status.items).toEqual({ total: 25, succeeded: 25, failed: 0, pending: 0 });
    expect(status.shards.total).toBe(3);
    expect(status.shards.done).toBe(3);
    expect(status.launches).toHaveLength(1);
    expect(status.executions).toBe(25);

    const st = await cli(["status", status.runId, "--json"], dir);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ runId: status.runId, state: "succeeded", items: status.items });

    const human = await cli(["status", status.runId], dir);
    expect(human.stdout).toContain("25 succeeded");

    const runs = await cli(["runs", "--json"], dir);
    const list = JSON.parse(runs.stdout) as { runId: string; job: string; state: string; createdAt: string }[];
    expect(list[0]).toMatchObject({ runId: status.runId, job: "sleepy", state: "succeeded" });
    expect(Date.parse(list[0]!.createdAt)).not.toBeNaN();

    const out = await cli(["output", status.runId], dir);
    const lines = parseLines<{ key: string; output: { n: number; square: number } }>(out.stdout);
    expect(lines.map((l) => l.key).sort()).toEqual(Array.from({ length: 25 }, (_, n) => `item-${n}`).sort());
    for (const l of lines) expect(l.output.square).toBe(l.output.n * l.output.n);
  });

  it("ends partial with exit 3 when items fail, and reruns exactly the failed items", async () => {
    const dir = tempDir();
    const r = await cli(["run", SLEEPY, "--local", "--arg", "count=30", "--arg", "sleepMs=1", "--arg", "failEvery=7", "--json"], dir);
    expect(r.code).toBe(3);
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: Record<string, number> };
    expect(status.state).toBe("partial");
    // 0, 7, 14, 21, 28 fail every time.
    expect(status.items).toEqual({ total: 30, succeeded: 25, failed: 5, pending: 0 });
    const rerun = await cli(["rerun", status.runId, "--local", "--failed-items", "--json"], dir);
    expect(rerun.code).toBe(3);
    const after = JSON.parse(rerun.stdout) as { state: string; items: Record<string, number>; shards: { total: number } };
    expect(after.items).toEqual({ total: 30, succeeded: 25, failed: 5, pending: 0 });
    expect(after.shards.total).toBeGreaterThan(3);
    const out = parseLines((await cli(["output", status.runId], dir)).stdout);
    expect(out).toHaveLength(25);
    expect(new Set(out.map((l) => l.key)).size).toBe(25);
  });

  it("records items that fail their schema as failed with the field path, without crashing the shard", async () => {
    const dir = tempDir();
    const r = await cli(["run", join(ROOT, "test/fixtures/jobs/mixed.ts"), "--local", "--json"], dir);
    expect(r.code).toBe(3);
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: Record<string, number> };
    expect(status.state).toBe("partial");
    expect(status.items).toEqual({ total: 12, succeeded: 9, failed: 3, pending: 0 });
    const deadLetter = await new FsObjectStore(join(dir, ".shardrun")).get(`runs/${status.runId}/dead-letter.jsonl`);
    const dead = parseLines<{ key: string; reason: string; error: string }>(Buffer.from(deadLetter!.bytes).toString("utf8"));
    expect(dead.map((d) => d.key).sort()).toEqual(["bad-11", "bad-3", "bad-7"]);
    for (const d of dead) {
      expect(d.reason).toBe("schema");
      expect(d.error).toContain("size:");
    }
  });
});
