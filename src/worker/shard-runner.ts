/**
 * Works one shard under a lease: DESIGN.md protocols 1-3. Items run with p-limit concurrency;
 * finished outputs are buffered and committed as a create-only part followed by a checkpoint
 * conditioned on this owner's previous write. A failed condition means another attempt owns the
 * shard: everything stops and nothing more is committed.
 */
import pLimit from "p-limit";
import { nextRetryDelay } from "../core/backoff.js";
import {
  MIN_WRITE_GAP_MS,
  canTakeLease,
  checkpointDue,
  commitBatch,
  emptyCheckpoint,
  heartbeatDue,
  settledPositions,
  takeLease,
} from "../core/checkpoint.js";
import { addUsage, describeBudget, exceeded, exhausted, ZERO_USAGE, type Budgets, type Usage } from "../core/budget.js";
import { BudgetExceeded, LeaseLost, NonRetriableError, PreconditionFailed, RetryAfterError, errorMessage, isShardrunError } from "../core/errors.js";
import { partName } from "../core/ids.js";
import { sleep } from "../core/time.js";
import type { Job, JobContext } from "../core/job.js";
import { keys } from "../core/keys.js";
import type { Logger } from "../core/log.js";
import { Checkpoint, ItemLine, type FailedItem, type Owner } from "../core/model.js";
import { formatZodError } from "../core/zod-format.js";
import { getJson, parseJsonl, putJson } from "../store/json.js";
import type { RunBudget } from "./budget.js";
import type { Limiter } from "./limiter.js";
import { ItemSteps, idempotencyKey } from "./steps.js";
import type { Generation, ObjectStore } from "../store/port.js";

/** "budget": the owner stopped taking items because a shard or run budget ran out. */
export type ShardResult = "done" | "skipped" | "stopped" | "lost" | "budget";

export interface ShardRunnerOptions {
  store: ObjectStore;
  job: Job;
  runId: string;
  shard: string;
  me: Owner;
  leaseTtlMs: number;
  logger: Logger;
  /** Set when the task must stop taking items (deadline, SIGTERM). */
  stopping: AbortSignal;
  /** Aborts items in flight (the grace after `stopping` ran out). */
  abortItems: AbortSignal;
  now: () => number;
  random: () => number;
  /** Called once per executed item attempt; for tests and benchmarks that count work. */
  onExecution?: (key: string) => void;
  /** This task's shares of the job's run-wide limits, by name. */
  limiters?: ReadonlyMap<string, Limiter>;
  /** The task's share of the run budget. */
  budget?: RunBudget;
  /** The run's budgets (item and shard limits apply here). */
  budgets?: Budgets;
}

/**
 * How long after another writer's checkpoint a takeover writes: `updatedAt` is stamped before
 * that write was sent, so a margin over the one-second gap keeps the two a second apart.
 */
const TAKEOVER_GAP_MS = MIN_WRITE_GAP_MS + 200;

interface Finished {
  pos: number;
  line: string;
}


export class ShardRunner {
  readonly #o: ShardRunnerOptions;
  readonly #cpKey: string;
  #cp!: Checkpoint;
  #gen!: Generation;
  #lastWriteAt = 0;
  #seq = 0;
  #done: Finished[] = [];
  #failed: FailedItem[] = [];
  #executions = 0;
  /** Step results of unsettled items, by position (what the next checkpoint records). */
  #steps: Record<string, Record<string, unknown>> = {};
  #stepsDirty = 0;
  /** Spend recorded since the last write. */
  #usage: Usage = ZERO_USAGE;
  /** Set when a shard or run budget ran out: no new items start. */
  #budgetStop: { kind: "budget"; reason: string } | null = null;
  #itemLines: ItemLine[] | undefined;
  #lost = false;
  #flushing: Promise<void> = Promise.resolve();
  #flushQueued = false;
  readonly #lease = new AbortController();

  constructor(options: ShardRunnerOptions) {
    this.#o = options;
    this.#cpKey = keys.checkpoint(options.runId, options.shard);
  }

  /** The shard's items, read and parsed once per runner (items.jsonl never changes). */
  async #items(): Promise<ItemLine[]> {
    if (this.#itemLines) return this.#itemLines;
    const { store, runId, shard } = this.#o;
    const obj = await store.get(keys.shardItems(runId, shard));
    if (!obj) throw new Error(`shard ${shard} of run ${runId} has no items.jsonl`);
    return (this.#itemLines = parseJsonl(obj.bytes, ItemLine, keys.shardItems(runId, shard)));
  }

  /** Takes the lease if the rules allow; false when the shard is done or held by someone else. */
  async #acquire(): Promise<boolean> {
    const { store, runId, shard, me, now } = this.#o;
    for (let tries = 0; tries < 5; tries++) {
      const found = await getJson(store, this.#cpKey, Checkpoint);
      // A shard nobody started: its checkpoint is created with the lease taken, in one write
      // (creating it and then taking it would write one object twice within a second).
      const current = found ?? { value: emptyCheckpoint(runId, shard, (await this.#items()).length, now()), generation: "0" };
      const decision = canTakeLease(current.value, me, now());
      if (!decision.ok) return false;
      // A takeover right after the previous owner's last write (a retried attempt starts at
      // once) waits out the rest of that second: one write a second per object name.
      const gap = found ? Date.parse(found.value.updatedAt) + TAKEOVER_GAP_MS - now() : 0;
      if (gap > 0) await sleep(Math.min(gap, TAKEOVER_GAP_MS));
      const taken = takeLease(current.value, me, this.#o.leaseTtlMs, now());
      try {
        this.#gen = await putJson(store, this.#cpKey, taken, { ifGenerationMatch: found ? current.generation : 0 });
      } catch (e) {
        if (e instanceof PreconditionFailed) continue;
        throw e;
      }
      this.#cp = taken;
      this.#steps = structuredClone(taken.steps);
      this.#lastWriteAt = now();
      this.#o.logger.info("lease taken", { shard, epoch: taken.epoch, reason: decision.reason, done: taken.done.length, failed: taken.failed.length });
      return true;
    }
    return false;
  }

  /**
   * Runs the shard's remaining items. "ready" means every item settled (or the task is stopping)
   * and `commit()` must follow; the caller may start the next shard meanwhile, since the last
   * write of this checkpoint may have to wait out the one-write-per-second gap.
   */
  async runItems(): Promise<"ready" | "skipped" | "stopped" | "lost"> {
    const { job, stopping } = this.#o;
    if (stopping.aborted) return "stopped";
    if (!(await this.#acquire())) return "skipped";
    const items = await this.#items();
    const settled = settledPositions(this.#cp);
    const todo = items.map((_, pos) => pos).filter((pos) => !settled.has(pos));

    const itemSignal = AbortSignal.any([this.#o.abortItems, this.#lease.signal]);
    const limit = pLimit(job.concurrency);
    const ticker = setInterval(() => this.#maybeFlush(), 200);
    try {
      // Queued items that start after `stopping` return at once, so this settles promptly.
      await Promise.all(todo.map((pos) => limit(() => this.#runItem(pos, items[pos]!, itemSignal))));
    } finally {
      clearInterval(ticker);
    }
    return this.#lost ? "lost" : "ready";
  }

  /**
   * The last write: commits what is buffered and, when the task stops early, releases the lease
   * so that the next attempt (or anyone) resumes at once.
   */
  async commit(): Promise<ShardResult> {
    if (this.#lost) return "lost";
    try {
      await this.#flush(true, true);
    } catch (e) {
      if (e instanceof LeaseLost) return "lost";
      throw e;
    }
    if (this.#cp.state !== "done") return this.#budgetStop ? "budget" : "stopped";
    this.#o.logger.info("shard done", { shard: this.#o.shard, done: this.#cp.done.reduce((n, [a, b]) => n + b - a, 0), failed: this.#cp.failed.length });
    return "done";
  }

  async run(): Promise<ShardResult> {
    const r = await this.runItems();
    return r === "ready" ? this.commit() : r;
  }

  /** Writes a checkpoint now (SIGTSTP), within the one-write-per-second rule. */
  checkpointNow(): Promise<void> {
    return this.#flush(true, false).catch(() => undefined);
  }

  async #runItem(pos: number, line: ItemLine, itemSignal: AbortSignal): Promise<void> {
    const { job, stopping, logger, runId, shard, onExecution } = this.#o;
    if (stopping.aborted || this.#lost || this.#budgetStop) return;
    if (await this.#budgetSpent()) return;
    const parsed = job.item.safeParse(line.item);
    if (!parsed.success) {
      this.#fail({ pos, i: line.i, key: line.key, error: `item does not match the job's item schema: ${formatZodError(parsed.error)}`, attempts: 0, reason: "schema" });
      return;
    }
    const policy = job.retry;
    let itemUsage: Usage = ZERO_USAGE;
    const steps = new ItemSteps({
      store: this.#o.store,
      runId,
      itemIndex: line.i,
      itemKey: line.key,
      mode: job.steps,
      recorded: (this.#steps[String(pos)] ??= {}),
      onRecord: () => {
        this.#stepsDirty++;
      },
      spent: () => itemUsage,
      onReplayedSpend: (u) => {
        // Paid by an attempt that died before its checkpoint: count it now, once.
        this.#usage = addUsage(this.#usage, u);
        this.#o.budget?.record(u);
        this.#stepsDirty++;
      },
    });
    const itemBudget = this.#o.budgets?.item;
    for (let attempt = 1; ; attempt++) {
      steps.newAttempt();
      // An item's wall-time budget covers one attempt; its spend covers all of them.
      const overTime = new AbortController();
      const timer = itemBudget?.ms !== undefined ? setTimeout(() => overTime.abort(new BudgetExceeded(`item budget of ${itemBudget.ms} ms exhausted`)), itemBudget.ms) : undefined;
      const attemptSignal = timer ? AbortSignal.any([itemSignal, overTime.signal]) : itemSignal;
      if (attempt > 1 && stopping.aborted) return; // a retry waits for the next attempt of the task
      this.#executions++;
      onExecution?.(line.key);
      const ctx: JobContext = {
        signal: attemptSignal,
        log: logger.child({ item: line.key }),
        attempt,
        itemKey: line.key,
        itemIndex: line.i,
        runId,
        shard,
        epoch: this.#cp.epoch,
        step: (name, fn, options) => steps.step(name, fn, options),
        idempotencyKey: (name) => idempotencyKey(runId, line.key, name),
        limit: (name, fn) => {
          const limiter = this.#o.limiters?.get(name);
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
          this.#usage = addUsage(this.#usage, u);
          this.#o.budget?.record(u);
          const kind = exceeded(itemBudget, itemUsage);
          if (kind) throw new BudgetExceeded(`${describeBudget(kind, itemBudget!, "item")} (spent ${itemUsage.tokens} tokens, $${itemUsage.usd})`);
        },
      };
      try {
        const output = await Promise.resolve()
          .then(() => job.run(parsed.data, ctx))
          .finally(() => clearTimeout(timer));
        if (this.#lost) return;
        let json: string;
        try {
          json = JSON.stringify({ i: line.i, key: line.key, output: output ?? null });
        } catch (e) {
          this.#fail({ pos, i: line.i, key: line.key, error: `output is not JSON: ${errorMessage(e)}`, attempts: attempt, reason: "non_retriable" });
          return;
        }
        this.#done.push({ pos, line: json });
        delete this.#steps[String(pos)];
        this.#afterSettle();
        return;
      } catch (e) {
        const budgetError = e instanceof BudgetExceeded ? e : overTime.signal.aborted ? (overTime.signal.reason as BudgetExceeded) : null;
        if (budgetError && !this.#lost) {
          this.#fail({ pos, i: line.i, key: line.key, error: budgetError.message, attempts: attempt, reason: "budget" });
          return;
        }
        // Interrupted by the deadline, SIGTERM or a lost lease: not the item's fault, not recorded.
        if (itemSignal.aborted || this.#lost) return;
        const message = errorMessage(e);
        if (e instanceof NonRetriableError || isShardrunError(e, "NON_RETRIABLE")) {
          this.#fail({ pos, i: line.i, key: line.key, error: message, attempts: attempt, reason: "non_retriable" });
          return;
        }
        if (attempt >= policy.attempts) {
          this.#fail({ pos, i: line.i, key: line.key, error: message, attempts: attempt, reason: "error" });
          return;
        }
        const delay = e instanceof RetryAfterError ? e.retryAfterMs : nextRetryDelay(policy, attempt, this.#o.random);
        ctx.log.warn("item failed, retrying", { attempt, delayMs: delay, error: message });
        try {
          await sleep(delay, itemSignal);
        } catch {
          return;
        }
      }
    }
  }

  /** True (and the shard stops taking items) once the shard's or the run's budget is spent. */
  async #budgetSpent(): Promise<boolean> {
    const shardBudget = this.#o.budgets?.shard;
    const kind = exhausted(shardBudget, addUsage(this.#cp.usage, this.#usage), this.#cp.elapsedMs + (this.#o.now() - this.#lastWriteAt));
    let reason = kind ? describeBudget(kind, shardBudget!, "shard") : null;
    reason ??= (await this.#o.budget?.check()) ?? null;
    if (!reason) return false;
    if (!this.#budgetStop) {
      this.#budgetStop = { kind: "budget", reason };
      this.#o.logger.warn("budget exhausted: taking no more items", { shard: this.#o.shard, reason });
    }
    return true;
  }

  #fail(f: FailedItem): void {
    delete this.#steps[String(f.pos)];
    this.#o.logger.warn("item failed", { item: f.key, attempts: f.attempts, reason: f.reason, error: f.error });
    this.#failed.push(f);
    this.#afterSettle();
  }

  #afterSettle(): void {
    this.#maybeFlush();
  }

  #maybeFlush(): void {
    if (this.#flushQueued || this.#lost) return;
    const since = this.#o.now() - this.#lastWriteAt;
    const pending = this.#done.length + this.#failed.length + this.#stepsDirty;
    if (!checkpointDue({ pending, sinceWriteMs: since }, this.#o.job.checkpoint) && !heartbeatDue(since, this.#o.leaseTtlMs)) return;
    this.#flushQueued = true;
    this.#flush(false, false).catch((e) => {
      if (!(e instanceof LeaseLost)) this.#o.logger.error("checkpoint failed", { shard: this.#o.shard, error: errorMessage(e) });
    });
  }

  /** Serialized: one write of this checkpoint at a time, never two within a second. */
  #flush(force: boolean, final: boolean): Promise<void> {
    const next = this.#flushing.then(() => this.#write(force, final));
    this.#flushing = next.catch(() => undefined);
    return next;
  }

  async #write(force: boolean, final: boolean): Promise<void> {
    this.#flushQueued = false;
    if (this.#lost) throw new LeaseLost(`lease on ${this.#o.shard} lost`);
    const { store, runId, shard, now } = this.#o;
    const gap = now() - this.#lastWriteAt;
    if (gap < MIN_WRITE_GAP_MS) {
      if (!force) return;
      await sleep(MIN_WRITE_GAP_MS - gap);
    }
    const done = this.#done.splice(0);
    const failed = this.#failed.splice(0);
    const executions = this.#executions;
    this.#executions = 0;
    const usage = this.#usage;
    this.#usage = ZERO_USAGE;
    const elapsedMs = Math.max(0, now() - this.#lastWriteAt);
    this.#stepsDirty = 0;
    const steps = Object.fromEntries(Object.entries(this.#steps).filter(([, s]) => Object.keys(s).length > 0));
    let part: { name: string; count: number } | undefined;
    if (done.length) {
      const name = partName(this.#cp.epoch, ++this.#seq);
      // Protocol 2: the part first (create-only); a part no checkpoint names is an orphan.
      await store.put(keys.part(runId, shard, name), done.map((d) => d.line).join("\n") + "\n", { ifGenerationMatch: 0, contentType: "application/x-ndjson" });
      part = { name, count: done.length };
    }
    const next = commitBatch(
      this.#cp,
      { ...(part ? { part } : {}), done: done.map((d) => d.pos), failed, executions, steps, usage, elapsedMs, ...(final && this.#budgetStop ? { stop: this.#budgetStop } : {}) },
      now(),
      final,
    );
    try {
      this.#gen = await putJson(store, this.#cpKey, next, { ifGenerationMatch: this.#gen });
    } catch (e) {
      if (e instanceof PreconditionFailed) {
        this.#lost = true;
        this.#lease.abort(new LeaseLost(`lease on ${shard} lost`));
        this.#o.logger.warn("lease lost: another attempt owns the shard; committing nothing more", { shard, epoch: this.#cp.epoch });
        throw new LeaseLost(`lease on ${shard} lost`, { cause: e });
      }
      throw e;
    }
    this.#cp = next;
    this.#lastWriteAt = now();
  }
}
