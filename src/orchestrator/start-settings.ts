/**
 * A new run's settings (core/settings.ts `StartSettings`, what `run`'s flags and the API's start
 * body parse into) as the planner takes them: one mapping, so that the CLI and the API plan a
 * run with the same settings from the same input.
 */
import { budgetOf, limitsOf, parseTolerance, shardPolicyOf, type StartSettings } from "../core/settings.js";
import type { PlanLimits } from "../core/plan.js";
import type { ShardPolicy } from "../core/job.js";
import type { PlanSettings } from "./plan.js";

export interface StartPlan {
  policy?: ShardPolicy;
  limits: Partial<PlanLimits>;
  settings: PlanSettings;
}

/** @param leaseTtlMs shard lease TTL @default 30000 */
export function startPlan(s: StartSettings, leaseTtlMs = 30_000): StartPlan {
  const policy = shardPolicyOf(s);
  const runBudget = budgetOf(s.budgets);
  return {
    ...(policy ? { policy } : {}),
    limits: limitsOf(s),
    settings: {
      leaseTtlMs,
      taskTimeoutSeconds: s.taskTimeoutSeconds,
      maxRetries: s.maxRetries,
      maxLaunches: s.maxLaunches,
      ...(s.maxFailedItems !== undefined ? { maxFailedItems: parseTolerance(s.maxFailedItems) } : {}),
      ...(runBudget ? { runBudget } : {}),
      ...(s.tasks !== undefined ? { tasks: s.tasks } : {}),
      ...(s.parallelism !== undefined ? { parallelism: s.parallelism } : {}),
      ...(s.itemTimeoutSeconds !== undefined ? { itemTimeoutMs: s.itemTimeoutSeconds * 1000 } : {}),
      ...(s.crashLimit !== undefined ? { crashLimit: s.crashLimit } : {}),
      ...(s.concurrency !== undefined ? { concurrency: s.concurrency } : {}),
    },
  };
}
