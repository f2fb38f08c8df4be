/**
 * The Launcher port: what starts tasks. Cloud Run Jobs in production, local child processes as
 * the embedded default. Both report the same execution status, shaped after Cloud Run's
 * Execution and Task resources.
 */

export interface LaunchRequest {
  /** The Cloud Run job (or local job) name; shardrun uses one per deployment. */
  jobName: string;
  runId: string;
  /** Launch number within the run (0, 1, …). */
  launch: number;
  taskCount: number;
  /**
   * How many tasks run at once. The local launcher honours it; Cloud Run fixes parallelism on
   * the job, not per execution (see `runsAllTasksAtOnce`).
   */
  parallelism: number;
  taskTimeoutSeconds: number;
  /** Retries per task after its first attempt fails, as Cloud Run's `maxRetries`. */
  maxRetries: number;
  /** Environment for every task (the SHARDRUN_* overrides). */
  env: Record<string, string>;
}

export type ExecutionState = "pending" | "running" | "succeeded" | "failed" | "cancelled";
export type TaskState = "pending" | "running" | "retrying" | "succeeded" | "failed" | "cancelled";

export interface TaskStatus {
  index: number;
  state: TaskState;
  /** Attempts started so far (1 after the first start). */
  attempts: number;
  lastExitCode?: number;
  /** Attempts that ran past the task timeout. */
  timeouts?: number;
  /** How the last attempt ended, in words ("exit 1", "killed by SIGKILL", "timed out", …). */
  lastExit?: string;
  /** Local launcher only: pid of the running attempt. */
  pid?: number;
}

export interface ExecutionStatus {
  name: string;
  state: ExecutionState;
  taskCount: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  tasks: TaskStatus[];
  startedAt?: string;
  finishedAt?: string;
  /** A link a person can open (Cloud Console), when there is one. */
  url?: string;
}

export interface Launcher {
  readonly kind: "local" | "cloud-run" | "sim";
  /**
   * True when an execution runs all its tasks at once whatever `parallelism` asks: Cloud Run,
   * whose jobs shardrun deploys with parallelism unset, because an execution whose task count
   * is below its job's parallelism is refused.
   * @default false
   */
  readonly runsAllTasksAtOnce?: boolean;
  /**
   * Starts one execution; returns its name. Rejects with `LaunchUncertain` when it cannot tell
   * whether an execution started (it does not call again); any other rejection means none did.
   */
  launch(request: LaunchRequest, signal?: AbortSignal): Promise<string>;
  /** Null when the execution is unknown. */
  getExecution(name: string): Promise<ExecutionStatus | null>;
  cancel(name: string): Promise<void>;
  /** A page a person can open for the execution, without asking the API (Cloud Console). */
  executionUrl?(name: string): string | undefined;
  /**
   * Resolves when the execution's status may have changed (a task started or ended), or after
   * `timeoutMs`: lets a watcher react at once instead of polling. Optional.
   */
  waitForChange?(name: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

export function isTerminal(state: ExecutionState): boolean {
  return state === "succeeded" || state === "failed" || state === "cancelled";
}
