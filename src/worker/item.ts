/**
 * One item in one slot: its attempts with backoff, its context (signal, log, steps, limits, usage),
 * its own budget and time limit. It settles the position in its range (done, failed) or gives it
 * back (the task is stopping, the lease was lost) — never anything else.
 *
 * This is the hot path of a run of fast items: nothing is allocated per item that the item does
 * not use (the step recorder, the item's logger and its composite signal come into being when
 * asked for).
 */
import { nextRetryDelay } from "../core/backoff.js";
import { addUsage, describeBudget, exceeded, exhausted, ZERO_USAGE, type Budgets, type Usage } from "../core/budget.js";
import { BudgetExceeded, NonRetriableError, RetryAfterError, isShardrunError } from "../core/errors.js";
import type { Job, JobContext, JobLogger, StepOptions } from "../core/job.js";
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
  /** The range's logger (tagged with its shard). */
  logger: Logger;
  clock: Clock;
  random: () => number;
  /** Set when the task stops taking items (deadline, SIGTERM). */
  stopping: AbortSignal;
  /** Aborted when the items of this range must stop: the task's grace ran out, or the lease was lost. */
  itemSignal: AbortSignal;
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

/** What one item's attempts share: spend, steps, the last log line. */
class ItemState {
  usage: Usage = ZERO_USAGE;
  lastLog: string | undefined;
  #steps: ItemSteps | undefined;
  #logger: JobLogger | undefined;

  constructor(
    readonly o: ItemContextOptions,
    readonly range: RangeRunner,
    readonly pos: number,
    readonly line: ItemLine,
  ) {}

  steps(): ItemSteps {
    return (this.#steps ??= new ItemSteps({
      store: this.o.store,
      runId: this.o.runId,
      itemIndex: this.line.i,
      itemKey: this.line.key,
      mode: this.o.job.steps,
      recorded: this.range.stepsFor(this.pos),
      onRecord: () => this.range.stepRecorded(),
      spent: () => this.usage,
      onReplayedSpend: (u) => {
        // Paid by an attempt that died before its checkpoint: count it now, once.
        this.range.spent(u);
        this.o.budget?.record(u);
        this.range.stepRecorded();
      },
    }));
  }

  newAttempt(): void {
    this.#steps?.newAttempt();
  }

  logger(): JobLogger {
    if (!this.#logger) {
      const log = this.o.logger.child({ item: this.line.key });
      this.#logger = {
        info: (m, f) => ((this.lastLog = m), log.info(m, f)),
        warn: (m, f) => ((this.lastLog = m), log.warn(m, f)),
        error: (m, f) => ((this.lastLog = m), log.error(m, f)),
      };
    }
    return this.#logger;
  }
}

/** The `ctx` of one attempt; methods live on the prototype, so a fast item costs one small object. */
class AttemptContext implements JobContext {
  constructor(
    readonly s: ItemState,
    readonly signal: AbortSignal,
    readonly attempt: number,
  ) {}
  get log(): JobLogger {
    return this.s.logger();
  }
  get itemKey(): string {
    return this.s.line.key;
  }
  get itemIndex(): number {
    return this.s.line.i;
  }
  get runId(): string {
    return this.s.o.runId;
  }
  get shard(): string {
    return this.s.range.shard;
  }
  get epoch(): number {
    return this.s.range.epoch;
  }
  get args(): Readonly<Record<string, unknown>> {
    return this.s.o.args;
  }
  step<T>(name: string, fn: () => Promise<T> | T, options?: StepOptions<T>): Promise<T> {
    return this.s.steps().step(name, fn, options);
  }
  idempotencyKey(name: string): string {
    return idempotencyKey(this.s.o.runId, this.s.line.key, name);
  }
  limit<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const limiter = this.s.o.limiters?.get(name);
    if (!limiter) throw new NonRetriableError(`ctx.limit("${name}"): the job defines no limit named "${name}" (add it to \`limits\`)`);
    return limiter.run(fn, this.signal);
  }
  usage(spend: { tokens?: number; usd?: number }): void {
    const tokens = spend?.tokens ?? 0;
    const usd = spend?.usd ?? 0;
    if (!(Number.isFinite(tokens) && tokens >= 0 && Number.isFinite(usd) && usd >= 0)) {
      throw new NonRetriableError("ctx.usage: expected `tokens` and `usd` to be numbers from 0 up");
    }
    const u = { tokens, usd };
    const s = this.s;
    s.usage = addUsage(s.usage, u);
    s.range.spent(u);
    s.o.budget?.record(u);
    const itemBudget = s.o.budgets?.item;
    const kind = exceeded(itemBudget, s.usage);
    if (kind) throw new BudgetExceeded(`${describeBudget(kind, itemBudget!, "item")} (spent ${s.usage.tokens} tokens, $${s.usage.usd})`);
  }
}

type Outcome = { ok: true; output: unknown } | { ok: false; error: unknown } | { ok: false; abandoned: true };

/** Runs the item at `pos` of `range` to a settled state (or gives it back). Never throws. */
export async function runItem(o: ItemContextOptions, range: RangeRunner, pos: number, line: ItemLine): Promise<void> {
  const { job, clock } = o;
  const state = new ItemState(o, range, pos, line);
  const fail = (f: Omit<FailedItem, "pos" | "i" | "key">) => {
    o.logger.warn("item failed", { item: line.key, attempts: f.attempts, reason: f.reason, error: f.error });
    range.failed({ pos, i: line.i, key: line.key, ...f, ...(state.lastLog && !f.lastLog ? { lastLog: state.lastLog } : {}) });
  };
  // Every way out settles the item's admission to the run budget, a given-back item's too: an
  // admission never settled would hold the task's budget gate shut for good.
  const abandon = () => {
    o.budget?.settle(state.usage, false);
    range.abandoned(pos);
  };
  const parsed = job.item.safeParse(line.item);
  if (!parsed.success) {
    fail({ error: `item does not match the job's item schema: ${formatZodError(parsed.error)}`, attempts: 0, reason: "schema" });
    o.budget?.settle(state.usage, false);
    return;
  }
  const itemSignal = o.itemSignal;
  const itemBudget = o.budgets?.item;
  const policy = job.retry;
  for (let attempt = 1; ; attempt++) {
    state.newAttempt();
    if (attempt > 1 && o.stopping.aborted) return abandon(); // a retry waits for the next attempt of the task
    // An item's wall-time budget and time limit cover one attempt; its spend covers all of them.
    const limitMs = minDefined(itemBudget?.ms, o.itemTimeoutMs);
    let overTime: AbortController | undefined;
    let timer: NodeJS.Timeout | undefined;
    if (limitMs !== undefined) {
      const ctl = (overTime = new AbortController());
      timer = setTimeout(() => ctl.abort(itemBudget?.ms === limitMs ? new BudgetExceeded(`item budget of ${limitMs} ms exhausted`) : new ItemTimeout(limitMs)), limitMs);
    }
    const attemptSignal = overTime ? AbortSignal.any([itemSignal, overTime.signal]) : itemSignal;
    range.executionStarted();
    o.onExecution?.(line.key);
    const ctx = new AttemptContext(state, attemptSignal, attempt);
    const started = clock.now();
    let result: Outcome;
    let work: Promise<Outcome>;
    try {
      const r = job.run(parsed.data, ctx);
      work = r instanceof Promise || (r !== null && typeof (r as { then?: unknown })?.then === "function") ? Promise.resolve(r).then(ok, err) : Promise.resolve({ ok: true, output: r });
    } catch (e) {
      work = Promise.resolve({ ok: false, error: e });
    }
    if (overTime) {
      // An item that ignores its abort keeps its slot for a grace period, then is let go.
      const signal = overTime.signal;
      const grace = new Promise<Outcome>((resolve) => {
        const onAbort = () => {
          const g = setTimeout(() => resolve({ ok: false, abandoned: true }), abortGraceMs(limitMs!));
          void work.finally(() => clearTimeout(g));
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      });
      result = await Promise.race([work, grace]);
      clearTimeout(timer);
    } else result = await work;
    o.stats?.itemEnded(clock.now() - started);
    if (range.leaseSignal.aborted) return abandon();
    if (result.ok) {
      const out = outputLine(line.i, line.key, result.output);
      if ("problem" in out) {
        fail({ error: `output is not JSON: ${out.problem}`, attempts: attempt, reason: "non_retriable" });
        o.budget?.settle(state.usage, true);
        return;
      }
      range.done(pos, out.line);
      o.budget?.settle(state.usage, true);
      return;
    }
    if ("abandoned" in result) {
      fail({ error: `item ran past its time limit of ${limitMs} ms and ignored the abort; its slot was given up`, attempts: attempt, reason: "timeout" });
      o.budget?.settle(state.usage, false);
      return;
    }
    const e = result.error;
    const over = overTime?.signal.aborted ? (overTime.signal.reason as unknown) : null;
    const budgetError = isBudgetError(e) ? e : isBudgetError(over) ? over : null;
    const stack = thrownStack(e);
    const details = stack ? { stack } : {};
    if (budgetError && !range.leaseSignal.aborted) {
      fail({ error: thrownMessage(budgetError), attempts: attempt, reason: "budget", ...details });
      o.budget?.settle(state.usage, false);
      return;
    }
    // Interrupted by the deadline, SIGTERM or a lost lease: not the item's fault, not recorded.
    if (itemSignal.aborted) return abandon();
    const timedOut = over instanceof ItemTimeout;
    const message = timedOut ? (over as ItemTimeout).message : thrownMessage(e);
    if (isShardrunError(e, "NON_RETRIABLE") || e instanceof NonRetriableError) {
      fail({ error: message, attempts: attempt, reason: "non_retriable", ...details });
      o.budget?.settle(state.usage, false);
      return;
    }
    if (attempt >= policy.attempts) {
      fail({ error: message, attempts: attempt, reason: timedOut ? "timeout" : "error", ...details });
      o.budget?.settle(state.usage, false);
      return;
    }
    const delay = isShardrunError(e, "RETRY_AFTER") ? (e as RetryAfterError).retryAfterMs : nextRetryDelay(policy, attempt, o.random);
    state.logger().warn("item failed, retrying", { attempt, delayMs: delay, error: message });
    try {
      await clock.sleep(delay, itemSignal);
    } catch {
      return abandon();
    }
  }
}

const ok = (output: unknown): Outcome => ({ ok: true, output });
const err = (error: unknown): Outcome => ({ ok: false, error });

/** True (and the range stops taking items) once the shard's budget is spent. */
export function shardBudgetSpent(range: RangeRunner, budgets: Budgets | undefined): string | null {
  const b = budgets?.shard;
  if (!b) return null;
  const cp = range.checkpoint;
  const kind = exhausted(b, cp.usage, cp.elapsedMs);
  return kind ? describeBudget(kind, b, "shard") : null;
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}
