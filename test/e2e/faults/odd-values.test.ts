/**
 * What job code throws or returns that JSON cannot carry is named, never stored as
 * `[object Object]` or `{}` without a word.
 */
import { join } from "node:path";
import { expect, it } from "vitest";
import { keys } from "../../../src/core/keys.js";
import { FsObjectStore } from "../../../src/store/fs.js";
import { ROOT, cli, parseLines, tempDir } from "../helpers.js";

const JOB = join(ROOT, "test", "fixtures", "jobs", "odd-values.ts");

it("a thrown plain object or string, and outputs holding a function, a BigInt, a cycle or NaN, are dead-lettered with what they were", async () => {
  const dir = tempDir();
  const r = await cli(["run", JOB, "--local", "--json", "--tasks", "1"], dir);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  const status = JSON.parse(r.stdout) as { runId: string; state: string; items: { succeeded: number; failed: number } };
  expect(status).toMatchObject({ state: "partial", items: { succeeded: 2, failed: 6 } });

  const store = new FsObjectStore(join(dir, ".shardrun"));
  const dead = parseLines<{ key: string; error: string; reason: string }>(new TextDecoder().decode((await store.get(keys.deadLetter(status.runId)))!.bytes));
  const byKey = Object.fromEntries(dead.map((d) => [d.key, d]));
  expect(Object.keys(byKey).sort()).toEqual(["output-bigint", "output-cycle", "output-function", "output-nan", "throw-object", "throw-string"]);
  expect(byKey["throw-object"]!.error).toContain('{"code":42}');
  expect(byKey["throw-object"]!.error).not.toContain("[object Object]");
  expect(byKey["throw-string"]!.error).toContain("quota gone");
  expect(byKey["output-function"]!.error).toMatch(/output\.render is a function/);
  expect(byKey["output-bigint"]!.error).toMatch(/output\.tokens is a BigInt/);
  expect(byKey["output-cycle"]!.error).toMatch(/output\.self refers back to itself/);
  expect(byKey["output-nan"]!.error).toMatch(/output\.score is NaN/);
  // An output JSON cannot hold is not worth retrying: the same code returns it again.
  for (const k of ["output-bigint", "output-cycle", "output-function", "output-nan"]) expect(byKey[k]!.reason).toBe("non_retriable");

  // The outputs JSON can carry are there, a Date as its ISO string.
  const out = parseLines<{ key: string; output: unknown }>((await cli(["output", status.runId], dir)).stdout);
  expect(Object.fromEntries(out.map((o) => [o.key, o.output]))).toEqual({ plain: { id: "plain" }, "output-date": { at: "1970-01-01T00:00:00.000Z" } });
});
