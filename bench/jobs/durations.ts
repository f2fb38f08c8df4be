/**
 * What the bench jobs share: item durations drawn from a seeded lognormal (so every run of a
 * bench sees the same work, and the bench can compute the ideal from the same list), and an
 * append-only execution log written by the item itself, so that executions are counted from
 * outside shardrun (a killed task cannot take its lines back).
 */
import { appendFileSync } from "node:fs";
import { z } from "zod";
import { seededRandom } from "../../src/core/time.js";

export const BenchArgs = z.object({
  count: z.coerce.number().int().min(0).default(1000),
  /** Median item duration in ms (0: no-op items). */
  medianMs: z.coerce.number().min(0).default(0),
  /** Sigma of ln(duration); 0 gives every item `medianMs`. */
  sigma: z.coerce.number().min(0).default(0),
  /** Longest item in ms (0: no cap). */
  capMs: z.coerce.number().min(0).default(0),
  seed: z.coerce.number().int().default(1),
  /** Append `key \t ms since epoch \t pid` per item execution to this file. */
  log: z.string().optional(),
});
export type BenchArgs = z.infer<typeof BenchArgs>;

export const BenchItem = z.object({ n: z.number().int(), ms: z.number().min(0) });
export type BenchItem = z.infer<typeof BenchItem>;

/** The items of a bench run, in source order. */
export function* benchItems(a: BenchArgs): Generator<BenchItem> {
  const rnd = seededRandom(a.seed);
  for (let n = 0; n < a.count; n++) {
    let ms = a.medianMs;
    if (a.sigma > 0 && ms > 0) {
      const z1 = Math.sqrt(-2 * Math.log(rnd() || 1e-12)) * Math.cos(2 * Math.PI * rnd());
      ms = a.medianMs * Math.exp(a.sigma * z1);
    }
    if (a.capMs > 0) ms = Math.min(ms, a.capMs);
    yield { n, ms: Math.round(ms) };
  }
}

/** One line per execution, written when the item starts (a killed execution still counts). */
export function logExecution(file: string | undefined, key: string): void {
  if (file) appendFileSync(file, `${key}\t${Date.now()}\t${process.pid}\n`);
}

export async function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}
