/**
 * The pure parts of the simulated Cloud Storage (sim-bucket.ts): request counts over a sliding
 * second, a bucket capacity that ramps up under load, and latencies drawn from a lognormal
 * distribution. No clock of their own: every call is given the time.
 */

/** Events of the last `windowMs`, counted; remembers the highest count it ever held. */
export class SlidingWindow {
  readonly #windowMs: number;
  #times: number[] = [];
  #head = 0;
  #peak = 0;

  constructor(windowMs = 1000) {
    this.#windowMs = windowMs;
  }

  /** Events in (now - window, now]. */
  count(now: number): number {
    this.#expire(now);
    return this.#times.length - this.#head;
  }

  add(now: number): number {
    this.#expire(now);
    this.#times.push(now);
    const count = this.#times.length - this.#head;
    if (count > this.#peak) this.#peak = count;
    return count;
  }

  /** The highest count the window held at any moment. */
  get peak(): number {
    return this.#peak;
  }

  #expire(now: number): void {
    const cutoff = now - this.#windowMs;
    while (this.#head < this.#times.length && this.#times[this.#head]! <= cutoff) this.#head++;
    // Compact now and then, so that a long run does not keep every timestamp.
    if (this.#head > 4096 && this.#head * 2 > this.#times.length) {
      this.#times = this.#times.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** How a bucket's request capacity starts and grows. */
export interface RampOptions {
  /** Requests per second the bucket takes at first. */
  initialPerSecond: number;
  /** Time for the capacity to double while demand presses on it. @default 1200000 (20 min) */
  doublingMs?: number;
}

/**
 * A bucket's capacity for one kind of request (writes or reads). Cloud Storage starts a bucket
 * at about 1,000 writes and 5,000 reads a second and raises it as load grows, taking minutes to
 * do so; its guideline is to at most double the rate every 20 minutes. Modelled as: while the
 * demand of the last second is at least half the capacity, the capacity grows continuously at
 * that pace (twofold per `doublingMs`); otherwise it holds. It never shrinks within a simulation
 * (Cloud Storage scales a bucket down only after days of low load).
 */
export class RampedCapacity {
  readonly #doublingMs: number;
  #capacity: number;
  #last: number | undefined;

  constructor(options: RampOptions) {
    const { initialPerSecond, doublingMs = 20 * 60_000 } = options;
    if (!(initialPerSecond > 0)) throw new TypeError(`Expected \`initialPerSecond\` to be a number above 0, got ${initialPerSecond}`);
    if (!(doublingMs > 0)) throw new TypeError(`Expected \`doublingMs\` to be a number above 0, got ${doublingMs}`);
    this.#capacity = initialPerSecond;
    this.#doublingMs = doublingMs;
  }

  /** The capacity at `now`, given the demand (requests in the last second, this one included). */
  at(now: number, demand: number): number {
    const elapsed = this.#last === undefined ? 0 : Math.max(0, now - this.#last);
    this.#last = now;
    if (demand * 2 >= this.#capacity) this.#capacity *= 2 ** (elapsed / this.#doublingMs);
    return this.#capacity;
  }

  get current(): number {
    return this.#capacity;
  }
}

/** A latency distribution, lognormal, given by its median and 99th percentile. */
export interface LatencyModel {
  medianMs: number;
  p99Ms: number;
}

/** z of the standard normal's 99th percentile. */
const Z99 = 2.3263478740408408;

/**
 * Draws from a lognormal with the given median and 99th percentile: ln(latency) is normal with
 * mean ln(median) and deviation ln(p99 / median) / z99. `random` is uniform in [0, 1).
 */
export function lognormalSampler(model: LatencyModel, random: () => number): () => number {
  const { medianMs, p99Ms } = model;
  if (!(medianMs >= 0) || !(p99Ms >= medianMs)) {
    throw new TypeError(`Expected a latency with 0 <= medianMs <= p99Ms, got median ${medianMs} and p99 ${p99Ms}`);
  }
  if (medianMs === 0) return () => 0;
  const mu = Math.log(medianMs);
  const sigma = Math.log(p99Ms / medianMs) / Z99;
  return () => {
    // Box-Muller; 1 - random() keeps the logarithm's argument above 0.
    const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.exp(mu + sigma * normal);
  };
}
