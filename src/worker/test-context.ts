/**
 * A `ctx` for calling a job's `run(item, ctx)` outside a task: in unit tests of a job, or in a
 * bare loop. Steps are kept in memory (a second call with the same name in the same context
 * returns the first result, as a resumed item would see it).
 */
import type { JobContext, JobLogger, StepOptions } from "../core/job.js";
import { NonRetriableError } from "../core/errors.js";
import { idempotencyKey } from "./steps.js";

const quiet: JobLogger = { info() {}, warn() {}, error() {} };

export function createTestContext(
  overrides: Partial<Omit<JobContext, "step" | "idempotencyKey">> & { steps?: Map<string, unknown> } = {},
): JobContext {
  const steps = overrides.steps ?? new Map<string, unknown>();
  const base = {
    signal: new AbortController().signal,
    log: quiet,
    attempt: 1,
    itemKey: "item",
    itemIndex: 0,
    runId: "test-run",
    shard: "s000000",
    epoch: 1,
    args: {},
    ...overrides,
  };
  return {
    ...base,
    async step<T>(name: string, fn: () => Promise<T> | T, options: StepOptions<T> = {}): Promise<T> {
      if (steps.has(name)) {
        const stored = steps.get(name);
        if (!options.schema) return stored as T;
        const parsed = options.schema.safeParse(stored);
        if (!parsed.success) throw new NonRetriableError(`step "${name}": its recorded result does not match the step's schema`);
        return parsed.data;
      }
      const value = JSON.parse(JSON.stringify({ v: (await fn()) ?? null })).v as T;
      steps.set(name, value);
      return value;
    },
    idempotencyKey: (name: string) => idempotencyKey(base.runId, base.itemKey, name),
    // No run here to share a limit with: calls go straight through.
    limit: async <T>(_name: string, fn: () => Promise<T> | T): Promise<T> => fn(),
    usage: () => {},
    ...(overrides.limit ? { limit: overrides.limit } : {}),
    ...(overrides.usage ? { usage: overrides.usage } : {}),
  };
}
