/**
 * A task's view of the run budget. Tasks reserve chunks of what is left in the run's budget
 * object (`runs/<id>/budget.json`) by compare-and-swap, and spend within their reservation
 * without asking anyone. The reservations never add up to more than the budget, so the run
 * overshoots it only by what items in flight spend after their task's reservation ran out.
 * Checkpoints are where spend is settled: before every launch, when no task is alive, the
 * orchestrator sets the reserved amount back to what the checkpoints report, which also returns
 * what killed tasks had reserved and not spent.
 */
import { addUsage, ZERO_USAGE, type Budget, type Usage } from "../core/budget.js";
import { PreconditionFailed } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { BudgetLedger, type RunRecord } from "../core/model.js";
import { getJson, putJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";


/** The smallest chunk worth a write: 1% of the budget (or all that is left). */
const MIN_CHUNK = 0.01;

export class RunBudget {
  readonly #store: ObjectStore;
  readonly #run: RunRecord;
  readonly #budget: Budget | undefined;
  readonly #running: number;
  readonly #now: () => number;
  #grant: Usage = ZERO_USAGE;
  #used: Usage = ZERO_USAGE;
  #exhaustedWhy: string | null = null;
  #reserving: Promise<void> | null = null;

  constructor(store: ObjectStore, run: RunRecord, runningTasks: number, now: () => number = Date.now) {
    this.#store = store;
    this.#run = run;
    this.#budget = run.settings.budgets.run;
    this.#running = Math.max(1, runningTasks);
    this.#now = now;
  }

  /** Why the run budget is spent, or null while items may start. */
  async check(): Promise<string | null> {
    const b = this.#budget;
    if (!b || this.#exhaustedWhy) return this.#exhaustedWhy;
    if (b.ms !== undefined && this.#now() - Date.parse(this.#run.createdAt) >= b.ms) {
      return (this.#exhaustedWhy = `run budget of ${b.ms} ms of wall time exhausted`);
    }
    if (b.tokens === undefined && b.usd === undefined) return null;
    while (!this.#exhaustedWhy && this.#spentGrant()) {
      this.#reserving ??= this.#reserve().finally(() => (this.#reserving = null));
      await this.#reserving;
    }
    return this.#exhaustedWhy;
  }

  record(spend: Usage): void {
    this.#used = addUsage(this.#used, spend);
  }

  /** Gives back what this task reserved and did not spend (at the end of the task). */
  async release(): Promise<void> {
    const unspent = { tokens: Math.max(0, this.#grant.tokens - this.#used.tokens), usd: Math.max(0, this.#grant.usd - this.#used.usd) };
    if (!this.#budget || (unspent.tokens <= 0 && unspent.usd <= 0)) return;
    await this.#update((r) => ({ tokens: Math.max(0, r.tokens - unspent.tokens), usd: Math.max(0, r.usd - unspent.usd) }));
    this.#grant = this.#used;
  }

  #spentGrant(): boolean {
    const b = this.#budget!;
    return (b.tokens !== undefined && this.#used.tokens >= this.#grant.tokens) || (b.usd !== undefined && this.#used.usd >= this.#grant.usd);
  }

  async #reserve(): Promise<void> {
    const b = this.#budget!;
    let added: Usage | null = null;
    await this.#update((reserved) => {
      // What this task spent beyond its reservation is charged first: it was spent.
      const deficit = { tokens: Math.max(0, this.#used.tokens - this.#grant.tokens), usd: Math.max(0, this.#used.usd - this.#grant.usd) };
      const chunk = (limit: number | undefined, r: number) => {
        if (limit === undefined) return 0;
        const left = limit - r;
        return left <= 0 ? 0 : Math.min(left, Math.max(left / this.#running, limit * MIN_CHUNK));
      };
      const charged = addUsage(reserved, deficit);
      const tokens = chunk(b.tokens, charged.tokens);
      const usd = chunk(b.usd, charged.usd);
      const out = (b.tokens !== undefined && tokens <= 0) || (b.usd !== undefined && usd <= 0);
      added = out ? deficit : addUsage(deficit, { tokens, usd });
      return addUsage(reserved, added);
    });
    const a = added as Usage | null;
    if (a) this.#grant = addUsage(this.#grant, a);
    if (this.#spentGrant() || !a) {
      this.#exhaustedWhy = `run budget of ${[b.tokens !== undefined && `${b.tokens} tokens`, b.usd !== undefined && `$${b.usd}`].filter(Boolean).join(" and ")} exhausted`;
    }
  }

  /** Compare-and-swap on the ledger; `change` returns null to leave it as it is. */
  async #update(change: (reserved: Usage) => Usage | null): Promise<void> {
    const key = keys.budget(this.#run.runId);
    for (let tries = 0; tries < 50; tries++) {
      const current = await getJson(this.#store, key, BudgetLedger);
      const next = change(current?.value.reserved ?? ZERO_USAGE);
      if (!next) return;
      try {
        await putJson(this.#store, key, { reserved: next }, { ifGenerationMatch: current?.generation ?? 0 });
        return;
      } catch (e) {
        if (!(e instanceof PreconditionFailed)) throw e;
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (tries + 1)));
      }
    }
    throw new Error(`run ${this.#run.runId}: the budget ledger keeps changing; giving up on a reservation`);
  }
}
