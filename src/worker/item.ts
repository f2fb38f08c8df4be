/**
 * One item in one slot: its attempts with backoff, its context (signal, log, steps, limits, usage),
 * its own budget and time limit. It settles the position in its range (done, failed) or gives it
 * back (the task is stopping, the lease was lost) — never anything else.
 */
import { nextRetryDelay } from "../core/backoff.js";
import { addUsage, describeBudget, exceeded, exhausted, ZERO_USAGE, type Budgets, type Usage } from "../core/budget.js";
import { BudgetExceeded, NonRetriableError, RetryAfterError, isShardrunError } from "../core/errors.js";
import type { Job, JobContext } from "../core/job.js";
import type { Logger } from "../core/log.js";
import type { FailedItem, ItemLine } from "../core/model.js";
import type { Clock } from "../core/time.js";
import { formatZodError } from "../core/zod-format.js";
import type { ObjectStore } from "../store/port.js";
import type { RunBudget } from "./budget.js";
import type { Limiter } from "./limiter.js";
import type { RangeRunner } from "./range-runner.js";
import { ItemSteps, idempotencyKey } from "./steps.js";
import { outputLine, thrownMessage, thrownStack } from "./thrown.js";

export interface ItemContextOptions {
  store: ObjectStore;
  job: Job;
  runId: string;
  args: Readonly<Record<string, unknown>>;
  logger: Logger;
  clock: Clock;
  random: () => number;
  /** Set when the task stops taking items (deadline, SIGTERM). */
  stopping: AbortSignal;
  /** Aborts items in flight (the grace after `stopping` ran out). */
  abortItems: AbortSignal;
  itemTimeoutMs?: number;
  limiters?: ReadonlyMap<string, Limiter>;
  budget?: RunBudget;
  budgets?: Budgets;
  onExecution?: (key: string) => void;
  /** Told how long each attempt took (the task's measures of item time). */
  stats?: { itemEnded(ms: number): void };
}

/** An item's own budget ran out (decided on data: a job bundle has its own copy of the class). */
function isBudgetError(e: unknown): boolean {
  return e instanceof BudgetExceeded || (isShardrunError(e, "NON_RETRIABLE") && (e as { budget?: unknown }).budget === true);
}

/** How long an item that ignores its abort keeps its slot: then it is failed `timeout` and let go. */
export function abortGraceMs(timeoutMs: number): number {
  return Math.min(5000, Math.max(50, Math.round(timeoutMs / 4)));
}

class ItemTimeout extends Error {
  constructor(ms: number) {
    super(`item ran longer than its time limit of ${ms} ms`);
  }
}

/** Runs the item at `pos` of `range` to a settled state (or gives it back). Never throws. */
export async function runItem(o: ItemContextOptions, range: RangeRunner, pos: number, line: ItemLine): Promise<void> {
  const { job, logger, runId, clock } = o;
  const fail = (f: Omit<FailedItem, "pos" | "i" | "key">) => {
    logger.warn("item failed", { shard: range.shard, item: line.key, attempts: f.attempts, reason: f.reason, error: f.error });
    range.failed({ pos, i: line.i, key: line.key, ...f });
  };
  const parsed = job.item.safeParse(line.item);
  if (!parsed.success) {
    fail({ error: `item does not match the job's item schema: ${formatZodError(parsed.error)}`, attempts: 0, reason: "schema" });
    return;
  }
  const itemSignal = AbortSignal.any([o.abortItems, range.leaseSignal]);
  let itemUsage: Usage = ZERO_USAGE;
  let lastLog: string | undefined;
  const steps = new ItemSteps({
    store: o.store,
    runId,
    itemIndex: line.i,
    itemKey: line.key,
    mode: job.steps,
    recorded: range.stepsFor(pos),
    onRecord: () => range.stepRecorded(),
    spent: () => itemUsage,
    onReplayedSpend: (u) => {
      // Paid by an attempt that died before its checkpoint: count it now, once.
      range.spent(u);
      o.budget?.record(u);
      range.stepRecorded();
    },
  });
  const itemBudget = o.budgets?.item;
  const log = logger.child({ item: line.key });
  const jobLog = {
    info: (m: string, f?: Record<string, unknown>) => ((lastLog = m), log.info(m, f)),
    warn: (m: string, f?: Record<string, unknown>) => ((lastLog = m), log.warn(m, f)),
    error: (m: string, f?: Record<string, unknown>) => ((lastLog = m), log.error(m, f)),
  };
  const policy = job.retry;
  for (let attempt = 1; ; attempt++) {
    steps.newAttempt();
    if (attempt > 1 && o.stopping.aborted) return range.abandoned(pos); // a retry waits for the next attempt of the task
    // An item's wall-time budget and time limit cover one attempt; its spend covers all of them.
    const limitMs = minDefined(itemBudget?.ms, o.itemTimeoutMs);
    const overTime = new AbortController();
    const timer = limitMs !== undefined ? setTimeout(() => overTime.abort(itemBudget?.ms === limitMs ? new BudgetExceeded(`item budget of ${limitMs} ms exhausted`) : new ItemTimeout(limitMs)), limitMs) : undefined;
    const attemptSignal = timer ? AbortSignal.any([itemSignal, overTime.signal]) : itemSignal;
    range.executionStarted();
    o.onExecution?.(line.key);
    const ctx: JobContext = {
      signal: attemptSignal,
      log: jobLog,
      attempt,
      itemKey: line.key,
      itemIndex: line.i,
      runId,
      shard: range.shard,
      epoch: range.epoch,
      args: o.args,
      step: (name, fn, options) => steps.step(name, fn, options),
      idempotencyKey: (name) => idempotencyKey(runId, line.key, name),
      limit: (name, fn) => {
        const limiter = o.limiters?.get(name);
        if (!limiter) throw new NonRetriableError(`ctx.limit("${name}"): the job defines no limit named "${name}" (add it to \`limits\`)`);
        return limiter.run(fn, attemptSignal);
      },
      usage: (spend) => {
        const tokens = spend?.tokens ?? 0;
        const usd = spend?.usd ?? 0;
        if (!(Number.isFinite(tokens) && tokens >= 0 && Number.isFinite(usd) && usd >= 0)) {
          throw new NonRetriableError("ctx.usage: expected `tokens` and `usd` to be numbers from 0 up");
        }
        const u = { tokens, usd };
        itemUsage = addUsage(itemUsage, u);
        range.spent(u);
        o.budget?.record(u);
        const kind = exceeded(itemBudget, itemUsage);
        if (kind) throw new BudgetExceeded(`${describeBudget(kind, itemBudget!, "item")} (spent ${itemUsage.tokens} tokens, $${itemUsage.usd})`);
      },
    };
    const started = clock.now();
    let result: { ok: true; output: unknown } | { ok: false; error: unknown } | { ok: false; abandoned: true };
    const work = Promise.resolve()
      .then(() => job.run(parsed.data, ctx))
      .then(
        (output) => ({ ok: true as const, output }),
        (error: unknown) => ({ ok: false as const, error }),
      );
    if (timer) {
      // An item that ignores its abort keeps its slot for a grace period, then is let go.
      const grace = new Promise<{ ok: false; abandoned: true }>((resolve) => {
        const onAbort = () => {
          const g = setTimeout(() => resolve({ ok: false, abandoned: true }), abortGraceMs(limitMs!));
          void work.finally(() => clearTimeout(g));
        };
        if (overTime.signal.aborted) onAbort();
        else overTime.signal.addEventListener("abort", onAbort, { once: true });
      });
      result = await Promise.race([work, grace]);
      clearTimeout(timer);
    } else result = await work;
    o.stats?.itemEnded(clock.now() - started);
    if (range.leaseSignal.aborted) return range.abandoned(pos);
    if (result.ok) {
      const out = outputLine(line.i, line.key, result.output);
      if ("problem" in out) {
        fail({ error: `output is not JSON: ${out.problem}`, attempts: attempt, reason: "non_retriable", ...(lastLog ? { lastLog } : {}) });
        o.budget?.settle(itemUsage, true);
        return;
      }
      range.done(pos, out.line);
      o.budget?.settle(itemUsage, true);
      return;
    }
    if ("abandoned" in result) {
      fail({ error: `item ran past its time limit of ${limitMs} ms and ignored the abort; its slot was given up`, attempts: attempt, reason: "timeout", ...(lastLog ? { lastLog } : {}) });
      o.budget?.settle(itemUsage, false);
      return;
    }
    const e = result.error;
    const over = overTime.signal.aborted ? (overTime.signal.reason as unknown) : null;
    const budgetError = isBudgetError(e) ? e : isBudgetError(over) ? over : null;
    const details = { ...(thrownStack(e) ? { stack: thrownStack(e)! } : {}), ...(lastLog ? { lastLog } : {}) };
    if (budgetError && !range.leaseSignal.aborted) {
      fail({ error: thrownMessage(budgetError), attempts: attempt, reason: "budget", ...details });
      o.budget?.settle(itemUsage, false);
      return;
    }
    // Interrupted by the deadline, SIGTERM or a lost lease: not the item's fault, not recorded.
    if (itemSignal.aborted) return range.abandoned(pos);
    const timedOut = over instanceof ItemTimeout;
    const message = timedOut ? (over as ItemTimeout).message : thrownMessage(e);
    if (isShardrunError(e, "NON_RETRIABLE") || e instanceof NonRetriableError) {
      fail({ error: message, attempts: attempt, reason: "non_retriable", ...details });
      o.budget?.settle(itemUsage, false);
      return;
    }
    if (attempt >= policy.attempts) {
      fail({ error: message, attempts: attempt, reason: timedOut ? "timeout" : "error", ...details });
      o.budget?.settle(itemUsage, false);
      return;
    }
    const delay = isShardrunError(e, "RETRY_AFTER") ? (e as RetryAfterError).retryAfterMs : nextRetryDelay(policy, attempt, o.random);
    log.warn("item failed, retrying", { attempt, delayMs: delay, error: message });
    try {
      await clock.sleep(delay, itemSignal);
    } catch {
      return range.abandoned(pos);
    }
  }
}

/** True (and the range stops taking items) once the shard's budget is spent. */
export function shardBudgetSpent(range: RangeRunner, budgets: Budgets | undefined, extraUsage: Usage, extraMs: number): string | null {
  const b = budgets?.shard;
  if (!b) return null;
  const cp = range.checkpoint;
  const kind = exhausted(b, addUsage(cp.usage, extraUsage), cp.elapsedMs + extraMs);
  return kind ? describeBudget(kind, b, "shard") : null;
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}
