/**
 * What the benches share: temp stores, running the CLI as a child process, cleaning up what a
 * bench started (even when it is interrupted), running the bench jobs, tables.
 * Benches drive the real CLI rather than library calls so that every figure includes what a user
 * pays: process starts, planning, the launcher's supervisor and polling.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { LocalStatus } from "../src/launcher/local-model.js";

/** Repository root: benches run compiled, from dist/bench/. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = join(ROOT, "bin", "shardrun.js");
/** The compiled job: tasks load compiled modules, so give the CLI the .js path. */
export const SLEEPY = join(ROOT, "dist", "test", "fixtures", "jobs", "sleepy.js");
/** The bench jobs (bench/jobs/): seeded lognormal items, heaviest first; and no-op items in source order. */
export const JOBS = {
  lognormal: join(ROOT, "dist", "bench", "jobs", "lognormal.js"),
  noop: join(ROOT, "dist", "bench", "jobs", "noop.js"),
} as const;

/** Item counts scale with BENCH_SCALE (default 1) so a slow machine can run a smaller bench. */
export function scaled(n: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.BENCH_SCALE ?? "1";
  const scale = Number(raw);
  if (!(scale > 0)) throw new TypeError(`Expected BENCH_SCALE to be a number above 0, got "${raw}"`);
  return Math.max(1, Math.round(n * scale));
}

// ---------------------------------------------------------------- cleanup of what we started

const children = new Set<ChildProcess>();
const stores = new Set<string>();

/** A fresh store folder, removed (with its executions stopped) by `cleanup()`. */
export function tempStore(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `shardrun-bench-${label}-`));
  stores.add(dir);
  return dir;
}

/** Execution status files of a store's local launcher (not the specs, not temp files). */
export function executionStatuses(store: string): LocalStatus[] {
  const dir = join(store, ".executions");
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: LocalStatus[] = [];
  for (const name of names) {
    if (!name.endsWith(".json") || name.endsWith(".spec.json")) continue;
    try {
      out.push(LocalStatus.parse(JSON.parse(readFileSync(join(dir, name), "utf8"))));
    } catch {
      // Replaced by rename, so a read is whole; a parse error means a file of another kind.
    }
  }
  return out;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Stops everything the benches started and removes their stores. Synchronous, so that it also
 * works from an `exit` handler. The supervisor goes first: killed tasks of a live supervisor
 * would be retried. Only pids of executions still marked live are touched, since a finished
 * supervisor's pid may by now belong to an unrelated process.
 */
export function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
  for (const store of stores) {
    // A folder store keeps its executions inside; a gs:// run started in the folder, below .shardrun.
    for (const ex of [...executionStatuses(store), ...executionStatuses(join(store, ".shardrun"))]) {
      if (ex.state !== "running" && ex.state !== "pending") continue;
      if (ex.supervisorPid) kill(ex.supervisorPid, "SIGKILL");
      for (const t of ex.tasks) if (t.pid) kill(t.pid, "SIGKILL");
    }
    rmSync(store, { recursive: true, force: true });
  }
  stores.clear();
}

let installed = false;
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on("exit", cleanup);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping runs and removing temp stores\n`);
      cleanup();
      process.exit(130);
    });
  }
}

// ---------------------------------------------------------------- the CLI

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit: what a user waits for. */
  ms: number;
}

/** Runs `shardrun ...args`, tracked so that `cleanup()` can stop it. */
export function runCli(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: o.cwd ?? ROOT, env: { ...process.env, ...o.env }, stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code) => {
      children.delete(child);
      resolve({ code: code ?? 128, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), ms: performance.now() - t0 });
    });
  });
}

/** The part of `run --json` the benches read, parsed at the edge like any other input. */
export const RunJson = z.object({
  runId: z.string(),
  state: z.string(),
  items: z.object({ total: z.number(), succeeded: z.number(), failed: z.number(), pending: z.number() }),
  shards: z.object({ total: z.number(), done: z.number() }),
  launches: z.array(z.object({ n: z.number(), taskCount: z.number(), state: z.string(), execution: z.string().optional() })),
  executions: z.number(),
});
export type RunJson = z.infer<typeof RunJson>;

export interface JobRunOptions {
  store: string;
  job: keyof typeof JOBS;
  args: Record<string, string | number>;
  flags?: string[];
  env?: NodeJS.ProcessEnv;
}

/** `shardrun run <bench job> --local --json`; throws with the CLI's stderr when it did not finish. */
export async function runJob(o: JobRunOptions): Promise<{ ms: number; startedAt: number; endedAt: number; status: RunJson }> {
  const argFlags = Object.entries(o.args).flatMap(([k, v]) => ["--arg", `${k}=${v}`]);
  const startedAt = Date.now();
  const r = await runCli(["run", JOBS[o.job], "--local", "--store", o.store, "--json", ...(o.flags ?? []), ...argFlags], o.env ? { env: o.env } : {});
  if (r.code !== 0 && r.code !== 3) throw new Error(`shardrun run exited ${r.code}\n${r.stderr.slice(-2000)}`);
  return { ms: r.ms, startedAt, endedAt: startedAt + r.ms, status: RunJson.parse(JSON.parse(r.stdout)) };
}

// ---------------------------------------------------------------- printing

export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => "  " + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(head), "  " + widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n") + "\n";
}

export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const fixed = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
/** Rounds for the JSON line: figures, not float noise. */
export const round = (x: number, digits = 3) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);

/** The seeded PRNG of src/core: kill intervals and choices follow the same sequence in every bench run. */
export { seededRandom as mulberry32 } from "../src/core/time.js";
