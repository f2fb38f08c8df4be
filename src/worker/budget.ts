/**
 * A task's view of the run budget, with no hot object: the budget left when a launch started is
 * split over `banks` objects (`launches/<n>/budget/<k>.json`, created on first use), about one per
 * eight tasks. A task reserves chunks from its home bank (then from others) by compare-and-swap and
 * spends within what it reserved without asking anyone.
 *
 * Admission: an item starts only when what the task has reserved and not spent covers the item's
 * expected cost (the running mean of the items this task finished; one item at a time until the
 * first has finished), so a run stops within one item's spread of its budget, not one item per slot.
 * Killed tasks lose what they had reserved until the next launch, which splits what checkpoints say
 * is left again.
 */
import { addUsage, ZERO_USAGE, type Budget, type Usage } from "../core/budget.js";
import { landedBy, pacedWriteGapMs } from "../core/cadence.js";
import { PreconditionFailed } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { BudgetBank, type LaunchRecord, type RunRecord } from "../core/model.js";
import type { Clock } from "../core/time.js";
import { getJson, putJson } from "../store/json.js";
import { isRateLimited } from "../store/retry.js";
import type { ObjectStore } from "../store/port.js";

/** Tasks that share one bank. */
export const TASKS_PER_BANK = 8;
/** Banks a task tries before it calls the run budget spent. */
const BANKS_TRIED = 3;

export function bankCount(tasks: number): number {
  return Math.max(1, Math.ceil(tasks / TASKS_PER_BANK));
}

export class RunBudget {
  readonly #store: ObjectStore;
  readonly #run: RunRecord;
  readonly #launch: LaunchRecord;
  readonly #task: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #budget: Budget | undefined;
  #grant: Usage = ZERO_USAGE;
  #used: Usage = ZERO_USAGE;
  /** Expected cost of items admitted and not finished. */
  #pending: Usage = ZERO_USAGE;
  #inflight = 0;
  #finished = 0;
  #finishedSpend: Usage = ZERO_USAGE;
  #exhaustedWhy: string | null = null;
  #reserving: Promise<void> | null = null;
  #emptyBanks = new Set<number>();
  /** When this task admitted its first item: its spend rate is measured from there. */
  #startedAt: number | null = null;

  constructor(o: { store: ObjectStore; run: RunRecord; launch: LaunchRecord; taskIndex: number; clock: Clock; random: () => number }) {
    this.#store = o.store;
    this.#run = o.run;
    this.#launch = o.launch;
    this.#task = o.taskIndex;
    this.#clock = o.clock;
    this.#random = o.random;
    this.#budget = o.run.settings.budgets.run;
  }

  get limited(): boolean {
    return this.#budget !== undefined;
  }

  /** What the task expects the next item to spend: the mean of its finished items. */
  expected(): Usage {
    if (!this.#finished) return ZERO_USAGE;
    return { tokens: this.#finishedSpend.tokens / this.#finished, usd: this.#finishedSpend.usd / this.#finished };
  }

  /**
   * Null when an item may start (and then counts as admitted until `settle`), or why the run budget
   * is spent. Waits while a reservation is being made. Check `gated` first.
   */
  async admit(): Promise<string | null> {
    const b = this.#budget;
    if (!b) return null;
    if (this.#exhaustedWhy) return this.#exhaustedWhy;
    if (b.ms !== undefined && this.#clock.now() - Date.parse(this.#run.createdAt) >= b.ms) {
      return (this.#exhaustedWhy = `run budget of ${b.ms} ms of wall time exhausted`);
    }
    if (b.tokens === undefined && b.usd === undefined) return null;
    const want = this.expected();
    for (;;) {
      if (this.#covers(want)) break;
      this.#reserving ??= this.#reserve(want).finally(() => (this.#reserving = null));
      await this.#reserving;
      if (this.#exhaustedWhy) return this.#exhaustedWhy;
    }
    this.#pending = addUsage(this.#pending, want);
    this.#inflight++;
    this.#startedAt ??= this.#clock.now();
    return null;
  }

  /** An admitted item ended, having spent `spend` in all (already passed to `record`). */
  settle(spend: Usage, finished: boolean): void {
    if (!this.#budget || !(this.#budget.tokens !== undefined || this.#budget.usd !== undefined)) return;
    this.#inflight = Math.max(0, this.#inflight - 1);
    const want = this.expected();
    this.#pending = { tokens: Math.max(0, this.#pending.tokens - want.tokens), usd: Math.max(0, this.#pending.usd - want.usd) };
    if (finished) {
      this.#finished++;
      this.#finishedSpend = addUsage(this.#finishedSpend, spend);
    }
  }

  record(spend: Usage): void {
    this.#used = addUsage(this.#used, spend);
  }

  /**
   * True while no further item should start: until one item has finished, nothing says what an
   * item costs, so items of a spend-limited run go one at a time.
   */
  get gated(): boolean {
    const b = this.#budget;
    return !!b && (b.tokens !== undefined || b.usd !== undefined) && !this.#exhaustedWhy && !this.#finished && this.#inflight > 0;
  }

  /** What this task's own reservation lacks to admit an item of `want`. */
  #shortOf(want: Usage): Usage {
    const left = { tokens: this.#grant.tokens - this.#used.tokens - this.#pending.tokens, usd: this.#grant.usd - this.#used.usd - this.#pending.usd };
    return { tokens: Math.max(0, want.tokens - left.tokens), usd: Math.max(0, want.usd - left.usd) };
  }

  #covers(want: Usage): boolean {
    const b = this.#budget!;
    const left = { tokens: this.#grant.tokens - this.#used.tokens - this.#pending.tokens, usd: this.#grant.usd - this.#used.usd - this.#pending.usd };
    // Nothing known yet: anything reserved at all lets one item go.
    const tokens = b.tokens === undefined || (want.tokens > 0 ? left.tokens >= want.tokens : left.tokens > 0);
    const usd = b.usd === undefined || (want.usd > 0 ? left.usd >= want.usd : left.usd > 0);
    return tokens && usd;
  }

  async #reserve(want: Usage): Promise<void> {
    const share = this.#launch.budget;
    const b = this.#budget!;
    if (!share) {
      this.#exhaustedWhy = describeRun(b);
      return;
    }
    const banks = share.banks;
    const home = this.#task % banks;
    const order = [home];
    for (let k = 0; k < BANKS_TRIED - 1 && order.length < banks; k++) {
      const other = Math.floor(this.#random() * banks);
      if (!order.includes(other)) order.push(other);
    }
    for (const bank of order) {
      if (this.#emptyBanks.has(bank)) continue;
      const got = await this.#withdraw(bank, want, this.#shortOf(want));
      if (got) {
        this.#grant = addUsage(this.#grant, got);
        if (this.#covers(want)) return;
      } else this.#emptyBanks.add(bank);
    }
    if (!this.#covers(want)) this.#exhaustedWhy = `${describeRun(b)} (spent ${round(this.#used.tokens)} tokens, $${round(this.#used.usd)} in this task)`;
  }

  /** Takes a chunk from one bank by compare-and-swap; null when the bank has nothing left. */
  async #withdraw(bank: number, want: Usage, short: Usage): Promise<Usage | null> {
    const share = this.#launch.budget!;
    const key = keys.budgetBank(this.#run.runId, this.#launch.n, bank);
    const initial = { tokens: (share.tokens ?? 0) / share.banks, usd: (share.usd ?? 0) / share.banks };
    const slots = Math.max(1, this.#run.settings.concurrency);
    for (let tries = 0; tries < 20; ) {
      const current = await getJson(this.#store, key, BudgetBank);
      if (await this.#paced(current?.value, this.#clock.now())) continue;
      const left = current?.value.left ?? initial;
      // Where a bank takes one write a second, its tasks must come back no more often than that
      // between them: a task takes at least what it spends in TASKS_PER_BANK such gaps, twice over.
      const gap = pacedWriteGapMs(this.#store.limits);
      const elapsed = this.#startedAt === null ? 0 : this.#clock.now() - this.#startedAt;
      const paceFor = (used: number) => (gap > 0 && elapsed > 0 ? (used / elapsed) * TASKS_PER_BANK * gap * 2 : 0);
      const chunk = (limit: number | undefined, l: number, w: number, s: number, used: number) => {
        if (limit === undefined) return 0;
        // Less left than this task lacks for its next item: the bank is spent for it (taking crumbs
        // would cost a write and start nothing).
        if (l <= 0 || l < s) return 0;
        // A share of what the bank holds, but at least what a few items at once are expected to cost.
        return Math.min(l, Math.max(l / TASKS_PER_BANK, w * slots * 2, paceFor(used)));
      };
      const take = {
        tokens: chunk(this.#budget!.tokens, left.tokens, want.tokens, short.tokens, this.#used.tokens),
        usd: chunk(this.#budget!.usd, left.usd, want.usd, short.usd, this.#used.usd),
      };
      const empty = (this.#budget!.tokens !== undefined && take.tokens <= 0) || (this.#budget!.usd !== undefined && take.usd <= 0);
      if (empty) return null;
      try {
        await putJson(this.#store, key, { left: { tokens: left.tokens - take.tokens, usd: left.usd - take.usd }, at: this.#clock.now() } satisfies BudgetBank, {
          ifGenerationMatch: current?.generation ?? 0,
        });
        return take;
      } catch (e) {
        // Lost to another task of this bank (412), or refused while others wrote it (429s).
        if (!(e instanceof PreconditionFailed) && !isRateLimited(e)) throw e;
        tries++;
        // Another task of this bank got there first; Cloud Storage takes one write a second per object.
        await this.#clock.sleep(Math.max(this.#store.limits.objectWriteGapMs, 5) * (1 + this.#random()));
      }
    }
    return null;
  }

  /**
   * Waits when `bank` was written less than a second ago on a store that takes one write a second
   * per object (then the caller reads it again: someone may have written it meanwhile). True when
   * it waited.
   */
  /** The stamp of the bank write last seen, and when it was first read. */
  #lastSeen: { at: number; readAt: number } | null = null;

  async #paced(bank: BudgetBank | undefined, readAt: number): Promise<boolean> {
    // `at` was stamped before that write was sent; it landed by the read, or soon after its stamp.
    const gap = pacedWriteGapMs(this.#store.limits);
    if (!gap || bank?.at === undefined) return false;
    // Read again after a wait, the same write had landed by the first read already.
    const firstRead = this.#lastSeen?.at === bank.at ? this.#lastSeen.readAt : readAt;
    this.#lastSeen = { at: bank.at, readAt: firstRead };
    const wait = landedBy(firstRead, bank.at) + gap - this.#clock.now();
    if (wait <= 0) return false;
    // Spread out the tasks that wait for one bank over half a gap, so that they do not all write at
    // the same moment (all but one would be refused, and retried into the next second).
    await this.#clock.sleep(Math.min(wait, gap) + this.#random() * (gap / 2));
    return true;
  }

  /** Gives back what this task reserved and did not spend (at the end of the task). */
  async release(): Promise<void> {
    const share = this.#launch.budget;
    if (!this.#budget || !share) return;
    const unspent = { tokens: Math.max(0, this.#grant.tokens - this.#used.tokens), usd: Math.max(0, this.#grant.usd - this.#used.usd) };
    if (unspent.tokens <= 0 && unspent.usd <= 0) return;
    const key = keys.budgetBank(this.#run.runId, this.#launch.n, this.#task % share.banks);
    const initial = { tokens: (share.tokens ?? 0) / share.banks, usd: (share.usd ?? 0) / share.banks };
    for (let tries = 0; tries < 20; ) {
      const current = await getJson(this.#store, key, BudgetBank);
      if (await this.#paced(current?.value, this.#clock.now())) continue;
      const left = current?.value.left ?? initial;
      try {
        await putJson(this.#store, key, { left: { tokens: left.tokens + unspent.tokens, usd: left.usd + unspent.usd }, at: this.#clock.now() } satisfies BudgetBank, {
          ifGenerationMatch: current?.generation ?? 0,
        });
        this.#grant = this.#used;
        return;
      } catch (e) {
        // Lost to another task of this bank (412), or refused while others wrote it (429s).
        if (!(e instanceof PreconditionFailed) && !isRateLimited(e)) throw e;
        tries++;
        await this.#clock.sleep(Math.max(this.#store.limits.objectWriteGapMs, 5) * (1 + this.#random()));
      }
    }
  }
}

const round = (n: number) => Math.round(n * 1e6) / 1e6;

function describeRun(b: Budget): string {
  return `run budget of ${[b.tokens !== undefined && `${b.tokens} tokens`, b.usd !== undefined && `$${b.usd}`].filter(Boolean).join(" and ")} exhausted`;
}
