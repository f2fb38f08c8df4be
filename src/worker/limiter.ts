/** A task's share of a run-wide limit: a sliding window of starts and a cap on calls in flight. */
import { waitBeforeStart, type TaskShare } from "../core/limits.js";
import { sleep } from "../core/time.js";

export class Limiter {
  readonly #share: TaskShare;
  readonly #now: () => number;
  #starts: number[] = [];
  #active = 0;
  #queue: (() => void)[] = [];
  /** Serializes decisions so that waiting callers start in order. */
  #gate: Promise<void> = Promise.resolve();

  constructor(share: TaskShare, now: () => number = Date.now) {
    this.#share = share;
    this.#now = now;
  }

  async run<T>(fn: () => Promise<T> | T, signal?: AbortSignal): Promise<T> {
    const admitted = this.#gate.then(() => this.#admit(signal));
    this.#gate = admitted.catch(() => undefined);
    await admitted;
    try {
      return await fn();
    } finally {
      this.#active--;
      this.#queue.shift()?.();
    }
  }

  async #admit(signal?: AbortSignal): Promise<void> {
    while (this.#active >= this.#share.concurrent) {
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
    for (;;) {
      signal?.throwIfAborted();
      const now = this.#now();
      this.#starts = this.#starts.filter((t) => t > now - this.#share.windowMs);
      const wait = waitBeforeStart(this.#share, this.#starts, now);
      if (wait <= 0) break;
      await sleep(wait, signal);
    }
    this.#starts.push(this.#now());
    this.#active++;
  }
}

