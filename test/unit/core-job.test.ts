import { describe, expect, it } from "vitest";
import { z } from "zod";
import { RetryPolicy } from "../../src/core/backoff.js";
import { InvalidInputError, isShardrunError } from "../../src/core/errors.js";
import { defineJob, isJob, JobDefinitionSchema } from "../../src/core/job.js";

const item = z.object({ text: z.string() });
const minimal = () => ({
  name: "echo",
  item,
  source: () => [{ text: "a" }, { text: "b" }],
  run: async (i: { text: string }) => ({ echoed: i.text }),
});

/** Calls defineJob with a definition the types would refuse, and returns what it threw. */
function rejection(definition: unknown): InvalidInputError {
  try {
    defineJob(definition as never);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(isShardrunError(e, "INVALID_INPUT")).toBe(true);
    return e as InvalidInputError;
  }
  return expect.fail("defineJob accepted an invalid definition");
}

describe("defineJob: valid definitions", () => {
  it("accepts a minimal job and fills the defaults", () => {
    const def = minimal();
    const job = defineJob(def);
    expect(job.kind).toBe("shardrun.job");
    expect(job.name).toBe("echo");
    expect(job.concurrency).toBe(4);
    expect(job.shard).toEqual({ itemsPerShard: 100 });
    expect(job.retry).toEqual({ attempts: 3, minDelayMs: 1000, maxDelayMs: 60_000, factor: 2, jitter: true });
    expect(job.retry).toEqual(RetryPolicy.parse({}));
    expect(job.checkpoint).toEqual({ everyItems: 50, everyMs: 5000 });
    expect(job.tasks).toBeUndefined();
    expect(job.item).toBe(item);
    expect(job.source).toBe(def.source);
    expect(job.run).toBe(def.run);
    expect(isJob(job)).toBe(true);
  });

  it("returns a frozen handle", () => {
    const job = defineJob(minimal());
    expect(Object.isFrozen(job)).toBe(true);
  });

  it("keeps given settings and fills the rest of partial retry and checkpoint objects", () => {
    const job = defineJob({
      ...minimal(),
      description: "echoes",
      concurrency: 16,
      shard: { count: 8 },
      retry: { attempts: 5, jitter: false },
      checkpoint: { everyItems: 10 },
      tasks: 3,
      key: (i) => i.text,
      weight: (i) => i.text.length,
    });
    expect(job.concurrency).toBe(16);
    expect(job.shard).toEqual({ count: 8 });
    expect(job.retry).toEqual({ attempts: 5, minDelayMs: 1000, maxDelayMs: 60_000, factor: 2, jitter: false });
    expect(job.checkpoint).toEqual({ everyItems: 10, everyMs: 5000 });
    expect(job.tasks).toBe(3);
    expect(job.description).toBe("echoes");
    expect(job.key?.({ text: "k" })).toBe("k");
  });

  it("accepts each shard policy", () => {
    expect(defineJob({ ...minimal(), shard: { itemsPerShard: 1 } }).shard).toEqual({ itemsPerShard: 1 });
    expect(defineJob({ ...minimal(), shard: { weightPerShard: 0.5 } }).shard).toEqual({ weightPerShard: 0.5 });
    expect(defineJob({ ...minimal(), shard: { count: 100_000 } }).shard).toEqual({ count: 100_000 });
  });

  it("accepts names up to 48 characters of lowercase letters, digits and dashes", () => {
    expect(defineJob({ ...minimal(), name: "a" }).name).toBe("a");
    expect(defineJob({ ...minimal(), name: "nightly-sweep-2" }).name).toBe("nightly-sweep-2");
    expect(defineJob({ ...minimal(), name: "a".repeat(48) }).name).toHaveLength(48);
  });

  it("does not share default objects between jobs", () => {
    const a = defineJob(minimal());
    const b = defineJob(minimal());
    expect(a.retry).not.toBe(b.retry);
    expect(a.checkpoint).not.toBe(b.checkpoint);
    expect(a.shard).not.toBe(b.shard);
  });
});

describe("defineJob: invalid definitions name the field", () => {
  it("concurrency 0", () => {
    const e = rejection({ ...minimal(), concurrency: 0 });
    expect(e.message).toContain("concurrency:");
    expect(e.message).toContain('"echo"');
  });

  it("concurrency that is not an integer or too large", () => {
    expect(rejection({ ...minimal(), concurrency: 1.5 }).message).toContain("concurrency:");
    expect(rejection({ ...minimal(), concurrency: 1001 }).message).toContain("concurrency:");
  });

  it("a name with upper case, a leading digit, other characters or too long", () => {
    for (const name of ["Echo", "1echo", "echo_docs", "echo docs", "a".repeat(49), ""]) {
      expect(rejection({ ...minimal(), name }).message, name).toMatch(/(^|: )name: /);
    }
  });

  it("a missing name", () => {
    const { name: _name, ...rest } = minimal();
    expect(rejection(rest).message).toMatch(/(^|: )name: /);
  });

  it("a missing run", () => {
    const { run: _run, ...rest } = minimal();
    expect(rejection(rest).message).toMatch(/(^|: )run: /);
  });

  it("run, source, key or weight that is not a function", () => {
    expect(rejection({ ...minimal(), run: "nope" }).message).toMatch(/(^|: )run: /);
    expect(rejection({ ...minimal(), source: [1, 2] }).message).toMatch(/(^|: )source: /);
    expect(rejection({ ...minimal(), key: "id" }).message).toMatch(/(^|: )key: /);
    expect(rejection({ ...minimal(), weight: 1 }).message).toMatch(/(^|: )weight: /);
  });

  it("an item that is not a zod schema", () => {
    expect(rejection({ ...minimal(), item: { text: "string" } }).message).toMatch(/(^|: )item: /);
  });

  it("checkpoint.everyMs under a second", () => {
    expect(rejection({ ...minimal(), checkpoint: { everyMs: 10 } }).message).toContain("checkpoint.everyMs:");
  });

  it("nested retry fields", () => {
    expect(rejection({ ...minimal(), retry: { attempts: 0 } }).message).toContain("retry.attempts:");
    expect(rejection({ ...minimal(), retry: { factor: 0.1 } }).message).toContain("retry.factor:");
  });

  it("a bad shard policy", () => {
    expect(rejection({ ...minimal(), shard: { count: 0 } }).message).toContain("shard");
    expect(rejection({ ...minimal(), shard: { count: 2, itemsPerShard: 5 } }).message).toContain("shard");
    expect(rejection({ ...minimal(), shard: { weightPerShard: 0 } }).message).toContain("shard");
  });

  it("an unknown key (the definition is strict)", () => {
    const e = rejection({ ...minimal(), concurency: 8 });
    expect(e.message).toContain("concurency");
    expect(JobDefinitionSchema.safeParse({ ...minimal(), concurency: 8 }).success).toBe(false);
  });

  it("an unknown key inside retry or checkpoint", () => {
    expect(rejection({ ...minimal(), retry: { tries: 2 } }).message).toContain("retry");
    expect(rejection({ ...minimal(), checkpoint: { everySeconds: 2 } }).message).toContain("checkpoint");
  });

  it("something that is not an object at all", () => {
    expect(rejection(null).message).toContain("invalid job definition");
    expect(rejection("echo").message).toContain("invalid job definition");
  });
});

describe("isJob", () => {
  it("is false for anything not made by defineJob", () => {
    expect(isJob(minimal())).toBe(false);
    expect(isJob(null)).toBe(false);
    expect(isJob("shardrun.job")).toBe(false);
    expect(isJob({ kind: "other" })).toBe(false);
  });
});
