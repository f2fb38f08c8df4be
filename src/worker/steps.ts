/**
 * `ctx.step` and `ctx.idempotencyKey` (DESIGN.md protocol 8). Step results live in two places:
 * in the shard's checkpoint (recorded with its next write: no extra write, but a kill before
 * that write repeats the step), and, for "eager" steps, in an object of their own written
 * create-only as soon as the step finishes (one write per step, never repeated).
 */
import { createHash } from "node:crypto";
import { NonRetriableError, PreconditionFailed } from "../core/errors.js";
import type { StepOptions, StepRecording } from "../core/job.js";
import { keys } from "../core/keys.js";
import { formatZodError } from "../core/zod-format.js";
import type { ObjectStore } from "../store/port.js";
import { ZERO_USAGE, type Usage } from "../core/budget.js";

const decoder = new TextDecoder();

/** `shardrun-` and 40 hex digits of sha256(run/item/step): stable, and short enough for any API. */
export function idempotencyKey(runId: string, itemKey: string, name: string): string {
  return `shardrun-${createHash("sha256").update(`${runId}\u0000${itemKey}\u0000${name}`).digest("hex").slice(0, 40)}`;
}

/** A store-safe id for a step name: readable where it can be, unique through a hash. */
export function stepId(name: string): string {
  const readable = name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 40);
  return `${readable}-${createHash("sha256").update(name).digest("hex").slice(0, 12)}`;
}

export interface ItemStepsOptions {
  store: ObjectStore;
  runId: string;
  itemIndex: number;
  itemKey: string;
  mode: StepRecording;
  /** This item's recorded results (from the checkpoint); the recorder adds to it in place. */
  recorded: Record<string, unknown>;
  /** Called when a result was added, so the owner checkpoints it. */
  onRecord: () => void;
  /** What the item has spent so far (ctx.usage), to tell what a step spent. */
  spent?: () => Usage;
  /**
   * Spend of an eager step whose result is read back from its own object but not from the
   * checkpoint: the attempt that ran it died before a checkpoint committed that spend.
   */
  onReplayedSpend?: (spend: Usage) => void;
}

/** One item's steps, shared by all its attempts in this task. */
export class ItemSteps {
  readonly #o: ItemStepsOptions;
  #used = new Set<string>();

  constructor(options: ItemStepsOptions) {
    this.#o = options;
  }

  /** A new attempt of the item may run the same step names again. */
  newAttempt(): void {
    this.#used = new Set();
  }

  async step<T>(name: string, fn: () => Promise<T> | T, options: StepOptions<T> = {}): Promise<T> {
    if (typeof name !== "string" || !name) throw new TypeError("Expected `name` of ctx.step to be a non-empty string");
    if (this.#used.has(name)) throw new NonRetriableError(`step "${name}" ran twice in one item: step names must be unique within an item`);
    this.#used.add(name);
    const mode = options.record ?? this.#o.mode;
    const { store, runId, itemIndex } = this.#o;
    const key = keys.step(runId, itemIndex, stepId(name));

    if (Object.hasOwn(this.#o.recorded, name)) return this.#readBack(name, this.#o.recorded[name], options);
    if (mode === "eager") {
      const stored = await store.get(key);
      if (stored) return this.#replay(name, stored.bytes, options);
    }
    const before = this.#o.spent?.() ?? ZERO_USAGE;
    const value = await fn();
    const after = this.#o.spent?.() ?? ZERO_USAGE;
    const spent = { tokens: after.tokens - before.tokens, usd: after.usd - before.usd };
    const json = JSON.stringify({ value: value ?? null });
    if (json === undefined) throw new NonRetriableError(`step "${name}" returned a value that is not JSON`);
    if (mode === "eager") {
      try {
        await store.put(key, JSON.stringify({ name, value: value ?? null, usage: spent, at: new Date().toISOString() }), {
          ifGenerationMatch: 0,
          contentType: "application/json",
        });
      } catch (e) {
        // Another attempt finished the same step first: its result is the one the item keeps.
        if (!(e instanceof PreconditionFailed)) throw e;
        // (This attempt's own spend for the step is already counted: nothing to replay.)
        const other = await store.get(key);
        if (other) return this.#remember(name, this.#readBack(name, (JSON.parse(decoder.decode(other.bytes)) as { value: unknown }).value, options));
      }
    }
    // What a resumed item gets back is the JSON form, so hand back the same now.
    return this.#remember(name, (JSON.parse(json) as { value: T }).value);
  }

  /**
   * A step found in its own object but not in the checkpoint: its result, and the spend the
   * checkpoint never committed (the steps map and the usage are written together, so a step in
   * the checkpoint has its spend counted, and one missing from it has not).
   */
  #replay<T>(name: string, bytes: Uint8Array, options: StepOptions<T>): T {
    const stored = JSON.parse(decoder.decode(bytes)) as { value: unknown; usage?: Usage };
    const value = this.#readBack(name, stored.value, options);
    if (stored.usage && (stored.usage.tokens > 0 || stored.usage.usd > 0)) this.#o.onReplayedSpend?.(stored.usage);
    return this.#remember(name, value);
  }

  #remember<T>(name: string, value: T): T {
    this.#o.recorded[name] = value;
    this.#o.onRecord();
    return value;
  }

  #readBack<T>(name: string, value: unknown, options: StepOptions<T>): T {
    if (!options.schema) return value as T;
    const parsed = options.schema.safeParse(value);
    if (!parsed.success) {
      throw new NonRetriableError(`step "${name}": its recorded result does not match the step's schema: ${formatZodError(parsed.error)}`);
    }
    return parsed.data;
  }
}
