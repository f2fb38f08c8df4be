/**
 * The local stand-in for a Cloud Run Jobs execution, run as its own detached process so that it
 * outlives the command that launched it, as a cloud execution would. It starts `taskCount`
 * tasks, at most `parallelism` at once, each with the CLOUD_RUN_* environment; a task that runs
 * past its timeout gets SIGTERM, then SIGKILL after the grace period; a task that fails is
 * retried up to `maxRetries` times with CLOUD_RUN_TASK_ATTEMPT counting up. Its status is a JSON
 * file replaced atomically, readable from any process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, readFileSync, renameSync, writeFileSync, closeSync } from "node:fs";
import { join } from "node:path";
import { ENV } from "../config/env.js";
import { LocalSpec, type LocalStatus } from "./local-model.js";

export function superviseExecution(spec: LocalSpec, env: NodeJS.ProcessEnv = process.env): Promise<LocalStatus> {
  mkdirSync(spec.logDir, { recursive: true });
  const status: LocalStatus = {
    name: spec.name,
    state: "running",
    supervisorPid: process.pid,
    taskCount: spec.taskCount,
    startedAt: new Date().toISOString(),
    tasks: Array.from({ length: spec.taskCount }, (_, index) => ({ index, state: "pending" as const, attempts: 0, timedOut: 0 })),
  };
  const save = () => {
    const tmp = `${spec.statusPath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(status));
    renameSync(tmp, spec.statusPath);
  };
  const queue: number[] = status.tasks.map((t) => t.index);
  const children = new Map<number, ChildProcess>();
  /** Tasks whose last attempt ran past the task timeout (and was ended for it). */
  const lastTimedOut = new Set<number>();
  let cancelled = false;

  return new Promise((resolve) => {
    const finishIfDone = () => {
      if (queue.length || children.size) return;
      const tasks = status.tasks;
      status.state = cancelled ? "cancelled" : tasks.every((t) => t.state === "succeeded") ? "succeeded" : "failed";
      status.finishedAt = new Date().toISOString();
      save();
      resolve(status);
    };
    const startNext = () => {
      while (!cancelled && children.size < spec.parallelism && queue.length) start(queue.shift()!);
      save();
      finishIfDone();
    };
    const start = (index: number) => {
      const task = status.tasks[index]!;
      const attempt = task.attempts;
      task.attempts++;
      task.state = "running";
      const log = openSync(join(spec.logDir, `task-${index}.log`), "a");
      const child = spawn(spec.command[0]!, spec.command.slice(1), {
        cwd: spec.cwd,
        stdio: ["ignore", log, log],
        env: {
          ...env,
          ...spec.env,
          [ENV.execution]: spec.name,
          [ENV.taskIndex]: String(index),
          [ENV.taskCount]: String(spec.taskCount),
          [ENV.taskAttempt]: String(attempt),
          // How the previous attempt ended, so that the next one can tell a kill from a crash
          // (Cloud Run does not say; there the worker assumes the worst).
          ...(attempt > 0 && task.lastExitCode !== undefined ? { [ENV.previousExit]: previousExit(task.lastExitCode, task.lastSignal, lastTimedOut.has(index)) } : {}),
        },
      });
      closeSync(log);
      if (child.pid !== undefined) task.pid = child.pid;
      children.set(index, child);
      let killTimer: NodeJS.Timeout | undefined;
      lastTimedOut.delete(index);
      const timeout = setTimeout(() => {
        task.timedOut++;
        lastTimedOut.add(index);
        child.kill("SIGTERM");
        killTimer = setTimeout(() => child.kill("SIGKILL"), spec.killGraceSeconds * 1000);
      }, spec.taskTimeoutSeconds * 1000);
      child.on("error", () => undefined);
      child.on("close", (code, signal) => {
        clearTimeout(timeout);
        if (killTimer) clearTimeout(killTimer);
        children.delete(index);
        delete task.pid;
        task.lastExitCode = code ?? 128 + (signal ? signalNumber(signal) : 0);
        if (signal) task.lastSignal = signal;
        else delete task.lastSignal;
        if (cancelled) task.state = "cancelled";
        else if (code === 0) task.state = "succeeded";
        else if (task.attempts <= spec.maxRetries) {
          task.state = "retrying";
          queue.unshift(index); // Cloud Run retries a failed task before starting new ones
        } else task.state = "failed";
        startNext();
      });
    };
    const cancel = () => {
      if (cancelled) return;
      cancelled = true;
      for (const t of status.tasks) if (t.state === "pending" || t.state === "retrying") t.state = "cancelled";
      queue.length = 0;
      for (const child of children.values()) {
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), spec.killGraceSeconds * 1000).unref();
      }
      save();
      finishIfDone();
    };
    process.on("SIGTERM", cancel);
    process.on("SIGINT", cancel);
    startNext();
  });
}

/** `timeout`, `signal:SIGKILL` or `code:3`: what SHARDRUN_PREVIOUS_EXIT says. */
function previousExit(code: number, signal: string | undefined, timedOut: boolean): string {
  if (timedOut) return "timeout";
  return signal ? `signal:${signal}` : `code:${code}`;
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGSEGV: 11, SIGABRT: 6 } as Record<string, number>)[signal] ?? 0;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"))) {
  const spec = LocalSpec.parse(JSON.parse(readFileSync(process.argv[2] ?? "", "utf8")));
  superviseExecution(spec).then(() => process.exit(0));
}
