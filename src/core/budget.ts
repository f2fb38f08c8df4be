/**
 * Budgets: tokens, USD and wall time, per item, per shard and per run. Pure arithmetic here; the
 * worker counts and the orchestrator settles. A run budget holds across tasks by sharing out
 * what is left: each task may spend its share without asking anyone, then settles against what
 * the checkpoints report and takes a new share. Overshoot stays within the items in flight.
 */
import { z } from "zod";

export const Budget = z.strictObject({
  tokens: z.number().int().positive().optional(),
  usd: z.number().positive().optional(),
  /** Wall time in ms (an item's run, a shard's leases, a run since it was planned). */
  ms: z.number().int().positive().optional(),
});
export type Budget = z.infer<typeof Budget>;

export const Budgets = z.strictObject({
  item: Budget.optional(),
  shard: Budget.optional(),
  run: Budget.optional(),
});
export type Budgets = z.infer<typeof Budgets>;

export const Usage = z.object({ tokens: z.number().min(0).default(0), usd: z.number().min(0).default(0) });
export type Usage = z.infer<typeof Usage>;

export const ZERO_USAGE: Usage = Object.freeze({ tokens: 0, usd: 0 });

export function addUsage(a: Usage, b: Partial<Usage>): Usage {
  return { tokens: a.tokens + (b.tokens ?? 0), usd: round6(a.usd + (b.usd ?? 0)) };
}

export function subUsage(a: Usage, b: Usage): Usage {
  return { tokens: a.tokens - b.tokens, usd: round6(a.usd - b.usd) };
}

// Dollars add up in many small pieces; keep them from drifting in binary floating point.
const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

export type BudgetKind = "tokens" | "usd" | "ms";

/** The first budget limit that `usage` (and `elapsedMs`) reached, or null. */
export function exhausted(budget: Budget | undefined, usage: Usage, elapsedMs = 0): BudgetKind | null {
  if (!budget) return null;
  if (budget.tokens !== undefined && usage.tokens >= budget.tokens) return "tokens";
  if (budget.usd !== undefined && usage.usd >= budget.usd) return "usd";
  if (budget.ms !== undefined && elapsedMs >= budget.ms) return "ms";
  return null;
}

/** Like `exhausted`, but only past the limit: an item may use its whole budget. */
export function exceeded(budget: Budget | undefined, usage: Usage, elapsedMs = 0): BudgetKind | null {
  if (!budget) return null;
  if (budget.tokens !== undefined && usage.tokens > budget.tokens) return "tokens";
  if (budget.usd !== undefined && usage.usd > budget.usd) return "usd";
  if (budget.ms !== undefined && elapsedMs > budget.ms) return "ms";
  return null;
}

/** A task's share of what is left of a run budget (tokens and USD; time needs no sharing). */
export function shareOf(budget: Budget, spent: Usage, runningTasks: number): { tokens: number; usd: number } | null {
  const p = Math.max(1, runningTasks);
  const tokens = budget.tokens !== undefined ? (budget.tokens - spent.tokens) / p : Number.POSITIVE_INFINITY;
  const usd = budget.usd !== undefined ? (budget.usd - spent.usd) / p : Number.POSITIVE_INFINITY;
  if (tokens <= 0 || usd <= 0) return null;
  return { tokens, usd };
}

export function describeBudget(kind: BudgetKind, budget: Budget, scope: "item" | "shard" | "run"): string {
  const limit = kind === "tokens" ? `${budget.tokens} tokens` : kind === "usd" ? `$${budget.usd}` : `${budget.ms} ms`;
  return `${scope} budget of ${limit} exhausted`;
}
