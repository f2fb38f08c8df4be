/** What the local launcher and its supervisor process share: the spec and the status file. */
import { z } from "zod";

export const LocalSpec = z.object({
  name: z.string(),
  taskCount: z.number().int().min(1),
  parallelism: z.number().int().min(1),
  taskTimeoutSeconds: z.number().positive(),
  maxRetries: z.number().int().min(0),
  killGraceSeconds: z.number().min(0),
  env: z.record(z.string(), z.string()),
  /** The program every task runs: [executable, ...args]. */
  command: z.array(z.string()).min(1),
  statusPath: z.string(),
  logDir: z.string(),
  cwd: z.string(),
});
export type LocalSpec = z.infer<typeof LocalSpec>;

const TaskState = z.enum(["pending", "running", "retrying", "succeeded", "failed", "cancelled"]);

export const LocalStatus = z.object({
  name: z.string(),
  state: z.enum(["pending", "running", "succeeded", "failed", "cancelled"]),
  supervisorPid: z.number().int(),
  taskCount: z.number().int(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  tasks: z.array(
    z.object({
      index: z.number().int(),
      state: TaskState,
      attempts: z.number().int(),
      lastExitCode: z.number().int().optional(),
      lastSignal: z.string().optional(),
      timedOut: z.number().int().default(0),
      pid: z.number().int().optional(),
    }),
  ),
});
export type LocalStatus = z.infer<typeof LocalStatus>;
