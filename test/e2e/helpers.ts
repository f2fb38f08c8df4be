/** Running the real CLI and reading a local store back, for end-to-end tests. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "bin", "shardrun.js");
export const SLEEPY = join(ROOT, "test", "fixtures", "jobs", "sleepy.ts");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function tempDir(prefix = "shardrun-e2e-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function startCli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<CliResult>((res) => child.on("close", (code) => res({ code, stdout, stderr })));
  return { child, done };
}

export function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return startCli(args, cwd, env).done;
}

export interface OutputLine {
  i: number;
  key: string;
  output: unknown;
}

export function parseLines<T = OutputLine>(text: string): T[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

/** Pids of task attempts running now, read from the local launcher's status files. */
export function runningTaskPids(storeDir: string): number[] {
  const dir = join(storeDir, ".executions");
  if (!existsSync(dir)) return [];
  const pids: number[] = [];
  for (const f of readdirSync(dir)) {
    if (!/^[^.]+-[0-9a-f]{5}\.json$/.test(f)) continue;
    try {
      const s = JSON.parse(readFileSync(join(dir, f), "utf8")) as { state: string; tasks: { pid?: number; state: string }[] };
      if (s.state !== "running") continue;
      for (const t of s.tasks) if (t.pid && t.state === "running") pids.push(t.pid);
    } catch {
      // replaced while we read it: next time
    }
  }
  return pids;
}

export interface ExecutionFile {
  name: string;
  state: string;
  tasks: { index: number; state: string; attempts: number; timedOut: number; lastExitCode?: number }[];
}

export function executionFiles(storeDir: string): ExecutionFile[] {
  const dir = join(storeDir, ".executions");
  return readdirSync(dir)
    .filter((f) => /^[^.]+-[0-9a-f]{5}\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as ExecutionFile);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A seeded PRNG, so a failing chaos schedule can be replayed from the seed in the test name. */
export { seededRandom as prng } from "../../src/core/time.js";
