/**
 * The Launcher port on this machine: each execution is a detached supervisor process (see
 * local-supervisor.ts) that behaves like a Cloud Run Jobs execution. Status is read from the
 * supervisor's status file, so any process can watch an execution.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, statSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ENV } from "../config/env.js";
import { LocalSpec, LocalStatus } from "./local-model.js";
import type { ExecutionStatus, LaunchRequest, Launcher, TaskState } from "./port.js";

export interface LocalLauncherOptions {
  /** Folder for status files and task logs. */
  stateDir: string;
  /**
   * Seconds between SIGTERM and SIGKILL when a task runs past its timeout or is cancelled.
   * @default 10
   */
  killGraceSeconds?: number;
  /** The task program. @default [node, dist/worker.mjs] (the bundled worker), else [node, dist/src/worker/main.js] */
  command?: string[];
  /** Extra environment for every task (tests use it for fault injection). */
  env?: Record<string, string>;
}

const WORKER = fileURLToPath(new URL("../worker/main.js", import.meta.url));
// `make build` bundles the worker into one file beside src/ (bundleWorker): tasks start faster from it.
const BUNDLED_WORKER = fileURLToPath(new URL("../../worker.mjs", import.meta.url));
const SUPERVISOR = fileURLToPath(new URL("./local-supervisor.js", import.meta.url));

export class LocalLauncher implements Launcher {
  readonly kind = "local" as const;
  readonly #o: Required<Omit<LocalLauncherOptions, "env">> & { env: Record<string, string> };
  /** Per execution, the identity of the status file getExecution last read (versionOf). */
  readonly #seen = new Map<string, string>();

  constructor(options: LocalLauncherOptions) {
    if (options.killGraceSeconds !== undefined && !(options.killGraceSeconds >= 0)) {
      throw new TypeError("Expected `killGraceSeconds` to be a number from 0 and up");
    }
    this.#o = {
      stateDir: options.stateDir,
      killGraceSeconds: options.killGraceSeconds ?? 10,
      command: options.command ?? [process.execPath, existsSync(BUNDLED_WORKER) ? BUNDLED_WORKER : WORKER],
      env: options.env ?? {},
    };
  }

  #statusPath(name: string): string {
    return join(this.#o.stateDir, `${name}.json`);
  }

  async launch(request: LaunchRequest): Promise<string> {
    mkdirSync(this.#o.stateDir, { recursive: true });
    // Cloud Run names executions "<job>-<5 chars>".
    const name = `${request.jobName}-${randomBytes(4).toString("hex").slice(0, 5)}`;
    const spec: LocalSpec = {
      name,
      taskCount: request.taskCount,
      parallelism: request.parallelism,
      taskTimeoutSeconds: request.taskTimeoutSeconds,
      maxRetries: request.maxRetries,
      killGraceSeconds: this.#o.killGraceSeconds,
      // The job, as Cloud Run sets it; the launch's identity, as the Cloud Run launcher sets it.
      env: { ...compileCacheEnv(), ...this.#o.env, ...request.env, [ENV.job]: request.jobName, [ENV.run]: request.runId, [ENV.launch]: String(request.launch) },
      command: this.#o.command,
      statusPath: this.#statusPath(name),
      logDir: join(this.#o.stateDir, name),
      cwd: process.cwd(),
    };
    const specPath = join(this.#o.stateDir, `${name}.spec.json`);
    writeFileSync(specPath, JSON.stringify(spec));
    const initial: LocalStatus = {
      name,
      state: "pending",
      supervisorPid: 0,
      taskCount: request.taskCount,
      startedAt: new Date().toISOString(),
      tasks: Array.from({ length: request.taskCount }, (_, index) => ({ index, state: "pending" as const, attempts: 0, timedOut: 0 })),
    };
    // Written before the supervisor starts, so that status is readable at once; the supervisor
    // replaces it with its own (carrying its pid) as soon as it runs.
    writeFileSync(spec.statusPath, JSON.stringify(initial));
    const log = openSync(join(this.#o.stateDir, `${name}.supervisor.log`), "a");
    // The supervisor stands between the CLI and the first task: it starts from Node's compile
    // cache too (enableCompileCache in bin/ covers the CLI's own process only).
    const child = spawn(process.execPath, [SUPERVISOR, specPath], { detached: true, stdio: ["ignore", log, log], cwd: process.cwd(), env: { ...process.env, ...compileCacheEnv() } });
    closeSync(log);
    if (child.pid) writeFileSync(join(this.#o.stateDir, `${name}.pid`), String(child.pid));
    child.unref();
    return name;
  }

  async getExecution(full: string): Promise<ExecutionStatus | null> {
    // A task names its execution as Cloud Run would (`jobs/<job>/executions/<id>`): the id is ours.
    const name = full.slice(full.lastIndexOf("/") + 1);
    const path = this.#statusPath(name);
    // Taken before the read: a change in between only makes waitForChange look once more.
    const version = versionOf(path);
    if (version === null) return null;
    this.#seen.set(name, version);
    const s = LocalStatus.parse(JSON.parse(readFileSync(path, "utf8")));
    let state = s.state;
    const pid = s.supervisorPid || this.#pidFromFile(name);
    // A supervisor that vanished without a final status (killed, machine restarted) ended it.
    if ((state === "running" || state === "pending") && pid && !alive(pid)) {
      const again = LocalStatus.parse(JSON.parse(readFileSync(path, "utf8")));
      // A cancel that killed the supervisor before it could handle SIGTERM still cancelled it.
      const cancelled = existsSync(this.#cancelPath(name));
      state = again.state === "running" || again.state === "pending" ? (cancelled ? "cancelled" : "failed") : again.state;
    }
    const tasks = s.tasks.map((t) => (state === "cancelled" && (t.state === "pending" || t.state === "retrying") ? { ...t, state: "cancelled" as const } : t));
    const count = (st: TaskState) => tasks.filter((t) => t.state === st).length;
    return {
      name,
      state,
      taskCount: s.taskCount,
      running: count("running"),
      succeeded: count("succeeded"),
      failed: count("failed"),
      cancelled: count("cancelled"),
      tasks: tasks.map((t) => ({
        index: t.index,
        state: t.state,
        attempts: t.attempts,
        ...(t.lastExitCode !== undefined ? { lastExitCode: t.lastExitCode } : {}),
        timeouts: t.timedOut,
        ...(t.lastExitCode !== undefined ? { lastExit: describeExit(t.lastExitCode, t.lastSignal) } : {}),
        ...(t.pid !== undefined ? { pid: t.pid } : {}),
      })),
      startedAt: s.startedAt,
      ...(s.finishedAt ? { finishedAt: s.finishedAt } : {}),
    };
  }

  waitForChange(name: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let watcher: FSWatcher | undefined;
      const done = () => {
        clearTimeout(timer);
        watcher?.close();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener("abort", done, { once: true });
      try {
        // The supervisor replaces its status file by rename on every change.
        watcher = watch(this.#o.stateDir, (_event, file) => {
          if (file === `${name}.json`) done();
        });
        watcher.on("error", () => undefined);
      } catch {
        // No watching here (a platform without inotify): the timeout alone paces the watcher.
      }
      // A change between the caller's last look and the watch's start has no event of its own:
      // without this, a run whose tasks ended during that look would wait out the whole timeout
      // (up to four times a look at a big run) before finishing.
      const seen = this.#seen.get(name);
      if (seen !== undefined && versionOf(this.#statusPath(name)) !== seen) done();
    });
  }

  #pidFromFile(name: string): number {
    const path = join(this.#o.stateDir, `${name}.pid`);
    return existsSync(path) ? Number(readFileSync(path, "utf8")) || 0 : 0;
  }

  async cancel(full: string): Promise<void> {
    const name = full.slice(full.lastIndexOf("/") + 1);
    const path = this.#statusPath(name);
    if (!existsSync(path)) return;
    const s = LocalStatus.parse(JSON.parse(readFileSync(path, "utf8")));
    const pid = s.supervisorPid || this.#pidFromFile(name);
    if (pid && alive(pid)) {
      writeFileSync(this.#cancelPath(name), "");
      process.kill(pid, "SIGTERM");
    }
  }

  #cancelPath(name: string): string {
    return join(this.#o.stateDir, `${name}.cancel`);
  }
}

/** How a task attempt ended, in words (exit codes as the worker uses them). */
export function describeExit(code: number, signal?: string): string {
  if (signal) return `killed by ${signal}`;
  if (code === 0) return "finished";
  if (code === 75) return "stopped with work left (deadline or SIGTERM)";
  if (code === 134) return "aborted (out of memory?)";
  return `exit ${code}`;
}

/**
 * Node's module compile cache for the tasks (Node >= 22.1): every task after the first on this
 * machine starts from compiled code instead of parsing the worker and the job's bundle again.
 * The user's own NODE_COMPILE_CACHE or NODE_DISABLE_COMPILE_CACHE wins.
 */
function compileCacheEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  if (env[ENV.nodeCompileCache] || env[ENV.nodeDisableCompileCache]) return {};
  return { [ENV.nodeCompileCache]: join(tmpdir(), "node-compile-cache") };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // A killed supervisor whose parent went first waits to be reaped by init; an init that does
  // not reap (a container's, a microVM's) leaves it a zombie for good: dead all the same.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    // Gone since the signal (where there is a /proc), or no /proc (macOS): signal 0 is all there is.
    return !existsSync("/proc/self/stat");
  }
}

/**
 * Which version of a status file is there, or null if none: every change is a new file renamed
 * over the old one, so its inode and change time differ (the inode alone would not do: a freed
 * inode is soon reused by the next change's file).
 */
function versionOf(path: string): string | null {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.ino}:${s.ctimeNs}:${s.size}`;
  } catch {
    return null;
  }
}
