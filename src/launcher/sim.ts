/**
 * A simulated Cloud Run Jobs launcher for tests and the scale bench (never for users): every task
 * of a launch runs in this process, as an async task running the real worker code (runTask: the
 * real lease, claim and commit protocols) against the store it is given, on a clock that may run
 * K times faster than real time. It keeps Cloud Run's shape: at most `parallelism` tasks at once,
 * retries with the attempt counter, and it can kill a chosen share of task attempts at random
 * moments — a killed attempt stops at once: every store call it makes from then on fails, its
 * items are abandoned, and nothing it had not written survives.
 */
import { keys } from "../core/keys.js";
import type { Job } from "../core/job.js";
import { silentLogger, type Logger } from "../core/log.js";
import { LaunchRecord, RunRecord } from "../core/model.js";
import { seededRandom, type Clock } from "../core/time.js";
import { getJson } from "../store/json.js";
import type { ObjectStore, StoreLimits } from "../store/port.js";
import { runTask } from "../worker/task.js";
import type { ExecutionStatus, LaunchRequest, Launcher, TaskState } from "./port.js";

export interface SimLauncherOptions {
  store: ObjectStore;
  clock: Clock;
  /** The job every task runs (the simulation's items sleep on `clock`). */
  job: Job;
  /**
   * Share of task attempts killed at a random moment of their expected life (0 to 1).
   * @default 0
   */
  killShare?: number;
  /** Expected life of a task in clock ms, to place kills in it. @default 60000 */
  expectedTaskMs?: number;
  /** Clock ms between a failed attempt and its retry (Cloud Run restarts a task's container). @default 5000 */
  retryDelayMs?: number;
  /** Clock ms from a launch to its first task's start (Cloud Run schedules containers). @default 2000 */
  startDelayMs?: number;
  seed?: number;
  logger?: Logger;
}

class Killed extends Error {
  constructor() {
    super("task attempt killed");
  }
}

interface SimTask {
  index: number;
  state: TaskState;
  attempts: number;
  killed: number;
}

interface SimExecution {
  name: string;
  state: ExecutionStatus["state"];
  tasks: SimTask[];
  startedAt: string;
  finishedAt?: string;
  cancel: AbortController;
}

export interface SimStats {
  attempts: number;
  kills: number;
  executions: number;
}

export class SimLauncher implements Launcher {
  readonly kind = "sim" as const;
  readonly #o: Required<Omit<SimLauncherOptions, "logger">> & { logger: Logger };
  readonly #executions = new Map<string, SimExecution>();
  readonly #random: () => number;
  readonly stats: SimStats = { attempts: 0, kills: 0, executions: 0 };
  #n = 0;

  constructor(options: SimLauncherOptions) {
    if (options.killShare !== undefined && !(options.killShare >= 0 && options.killShare <= 1)) throw new TypeError("Expected `killShare` to be a number from 0 to 1");
    this.#o = {
      killShare: 0,
      expectedTaskMs: 60_000,
      retryDelayMs: 5000,
      startDelayMs: 2000,
      seed: 1,
      logger: silentLogger,
      ...options,
    };
    this.#random = seededRandom(this.#o.seed);
  }

  async launch(request: LaunchRequest): Promise<string> {
    const name = `${request.jobName}-sim${String(++this.#n).padStart(4, "0")}`;
    const ex: SimExecution = {
      name,
      state: "running",
      tasks: Array.from({ length: request.taskCount }, (_, index) => ({ index, state: "pending" as TaskState, attempts: 0, killed: 0 })),
      startedAt: new Date(this.#o.clock.now()).toISOString(),
      cancel: new AbortController(),
    };
    this.#executions.set(name, ex);
    this.stats.executions++;
    void this.#drive(ex, request);
    return name;
  }

  async #drive(ex: SimExecution, request: LaunchRequest): Promise<void> {
    const { clock } = this.#o;
    await clock.sleep(this.#o.startDelayMs).catch(() => undefined);
    const queue = ex.tasks.map((t) => t.index);
    let running = 0;
    let wake: (() => void) | null = null;
    const settled = () => {
      running--;
      wake?.();
    };
    while (queue.length || running) {
      while (running < request.parallelism && queue.length && !ex.cancel.signal.aborted) {
        const t = ex.tasks[queue.shift()!]!;
        running++;
        void this.#attempt(ex, request, t).then((retry) => {
          if (retry) {
            void clock.sleep(this.#o.retryDelayMs).then(() => {
              queue.unshift(t.index); // Cloud Run retries a failed task before starting new ones
              settled();
            });
          } else settled();
        });
      }
      if (ex.cancel.signal.aborted && !running) break;
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    const tasks = ex.tasks;
    ex.state = ex.cancel.signal.aborted ? "cancelled" : tasks.every((t) => t.state === "succeeded") ? "succeeded" : "failed";
    ex.finishedAt = new Date(clock.now()).toISOString();
  }

  /** One attempt of one task; true when Cloud Run would retry it. */
  async #attempt(ex: SimExecution, request: LaunchRequest, t: SimTask): Promise<boolean> {
    const { clock, job } = this.#o;
    const attempt = t.attempts++;
    t.state = "running";
    this.stats.attempts++;
    const kill = new AbortController();
    const stopping = new AbortController();
    const onCancel = () => kill.abort(new Killed());
    ex.cancel.signal.addEventListener("abort", onCancel, { once: true });
    let killTimer: Promise<void> | null = null;
    if (this.#random() < this.#o.killShare) {
      const at = this.#random() * this.#o.expectedTaskMs;
      killTimer = clock.sleep(at, stopping.signal).then(
        () => {
          t.killed++;
          this.stats.kills++;
          kill.abort(new Killed());
        },
        () => undefined,
      );
    }
    const store = killable(this.#o.store, kill.signal);
    let retry = false;
    try {
      const run = await getJson(store, keys.run(request.runId), RunRecord);
      const launch = await getJson(store, keys.launch(request.runId, request.launch), LaunchRecord);
      if (!run || !launch) throw new Error(`run ${request.runId} or its launch ${request.launch} is missing`);
      const outcome = await runTask({
        store,
        job,
        run: run.value,
        launch: launch.value,
        me: { execution: ex.name, taskIndex: t.index, attempt, launch: request.launch },
        logger: this.#o.logger,
        stopping: kill.signal,
        abortItems: kill.signal,
        clock,
        random: seededRandom(this.#o.seed * 7919 + t.index * 131 + attempt),
      });
      if (kill.signal.aborted) throw new Killed();
      t.state = outcome === "stopped" ? "retrying" : "succeeded";
      retry = outcome === "stopped";
    } catch (e) {
      if (!(e instanceof Killed) && !kill.signal.aborted) this.#o.logger.error("simulated task failed", { task: t.index, error: String(e) });
      retry = !ex.cancel.signal.aborted && attempt < request.maxRetries;
      t.state = ex.cancel.signal.aborted ? "cancelled" : retry ? "retrying" : "failed";
    } finally {
      stopping.abort();
      await killTimer;
      ex.cancel.signal.removeEventListener("abort", onCancel);
    }
    return retry;
  }

  async getExecution(name: string): Promise<ExecutionStatus | null> {
    const ex = this.#executions.get(name);
    if (!ex) return null;
    const count = (s: TaskState) => ex.tasks.filter((t) => t.state === s).length;
    return {
      name,
      state: ex.state,
      taskCount: ex.tasks.length,
      running: count("running") + count("retrying"),
      succeeded: count("succeeded"),
      failed: count("failed"),
      cancelled: count("cancelled"),
      tasks: ex.tasks.map((t) => ({ index: t.index, state: t.state, attempts: t.attempts })),
      startedAt: ex.startedAt,
      ...(ex.finishedAt ? { finishedAt: ex.finishedAt } : {}),
    };
  }

  async cancel(name: string): Promise<void> {
    this.#executions.get(name)?.cancel.abort();
  }

  async waitForChange(name: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const ex = this.#executions.get(name);
    const until = this.#o.clock.now() + timeoutMs;
    while (ex && ex.state === "running" && this.#o.clock.now() < until && !signal?.aborted) {
      await this.#o.clock.sleep(Math.min(200, timeoutMs), signal).catch(() => undefined);
    }
  }
}

/** The store as a killed process would see it: every call from the kill on fails, and never lands. */
function killable(store: ObjectStore, killed: AbortSignal): ObjectStore {
  const guard = <T>(fn: () => Promise<T>): Promise<T> => {
    if (killed.aborted) return Promise.reject(new Killed());
    return fn().then((v) => {
      // A reply that arrives after the kill reaches nobody.
      if (killed.aborted) throw new Killed();
      return v;
    });
  };
  return {
    url: store.url,
    get limits(): StoreLimits {
      return store.limits;
    },
    get: (key, options) => guard(() => store.get(key, options)),
    put: (key, bytes, options) => guard(() => store.put(key, bytes, options)),
    list: (prefix, options) => guard(() => store.list(prefix, options)),
    delete: (key, options) => guard(() => store.delete(key, options)),
  };
}
