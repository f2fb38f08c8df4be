/** Pure parts of the operator's commands: failure groups, the exit-code table, CSV fields, log records. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ExitCode } from "../../src/core/errors.js";
import { EXIT_CODES, exitCodeOf, LISTED_STATES, RUN_STATES, shownState, type ShownState } from "../../src/core/states.js";
import type { FailedItemView } from "../../src/core/status.js";
import { csvField } from "../../src/orchestrator/output-format.js";
import { sinceFlag } from "../../src/cli/inspect.js";
import { matchesFilter, parseLogLine } from "../../src/log/records.js";
import { byReasons, groupFailures, messageShape } from "../../src/orchestrator/failure-groups.js";

const ROOT = join(import.meta.dirname, "../..");

const failure = (i: number, reason: string, error: string, o: Partial<FailedItemView> = {}): FailedItemView => ({ i, key: `doc-${i}`, shard: "s000000", error, attempts: 1, reason, ...o });

describe("messageShape", () => {
  it.each([
    ["upstream timed out after 1203 ms (request 8f3a9c21a1)", "upstream timed out after <n> ms (request <id>)"],
    ["upstream timed out after 977 ms (request 0b5e1d44a1)", "upstream timed out after <n> ms (request <id>)"],
    ['document "q3-report.md" is malformed at byte 4,096', 'document "…" is malformed at byte <n>'],
    ["rate limited: retry in 2.5s, id 3fa85f64-5717-4562-b3fc-2c963f66afa6", "rate limited: retry in <n>s, id <id>"],
    ["shard s000012 lost its lease", "shard <id> lost its lease"],
    ["no body after byte 1998.", "no body after byte <n>."],
    ["  too   much\n white space ", "too much white space"],
    ["plain words stay as they are", "plain words stay as they are"],
  ])("%s -> %s", (message, shape) => {
    expect(messageShape(message)).toBe(shape);
  });

  it("masks the item's own key", () => {
    expect(messageShape("cannot fetch doc-17: 404", "doc-17")).toBe("cannot fetch <key>: <n>");
  });

  it("cuts a long shape", () => {
    expect(messageShape("x".repeat(1000)).length).toBe(301);
  });
});

describe("groupFailures", () => {
  const items = [
    failure(1, "error", "upstream timed out after 1203 ms (request 8f3a9c21a1)", { stack: "Error: upstream\n    at run (job.js:1:1)", lastLog: "fetching" }),
    failure(2, "non_retriable", "document 2 is malformed"),
    failure(3, "error", "upstream timed out after 977 ms (request 0b5e1d44a1)"),
    failure(4, "error", "upstream timed out after 12 ms (request aaaa1111bb)"),
    failure(5, "timeout", "upstream timed out after 5000 ms (request cccc2222dd)"),
    failure(6, "non_retriable", "document 6 is malformed"),
  ];

  it("groups by reason and shape, largest first, with counts, samples, the first stack and log line", () => {
    const groups = groupFailures(items);
    expect(groups.map((g) => [g.reason, g.count])).toEqual([
      ["error", 3],
      ["non_retriable", 2],
      ["timeout", 1],
    ]);
    expect(groups[0]).toEqual({
      reason: "error",
      shape: "upstream timed out after <n> ms (request <id>)",
      count: 3,
      example: "upstream timed out after 1203 ms (request 8f3a9c21a1)",
      sampleKeys: ["doc-1", "doc-3", "doc-4"],
      stack: "Error: upstream\n    at run (job.js:1:1)",
      lastLog: "fetching",
    });
  });

  it("keeps at most five sample keys, and filters by reason", () => {
    const many = Array.from({ length: 12 }, (_, i) => failure(i, "error", `failed ${i}`));
    expect(groupFailures(many)[0]!.sampleKeys).toHaveLength(5);
    expect(byReasons(items, ["timeout", "non_retriable"]).map((f) => f.i)).toEqual([2, 5, 6]);
    expect(byReasons(items, [])).toHaveLength(6);
  });
});

describe("states and exit codes", () => {
  const at = (state: ShownState, pending = 0) => exitCodeOf({ state, items: { pending } });

  it("one exit code per state, by the table", () => {
    expect(RUN_STATES.map((s) => [s, at(s)])).toEqual([
      ["planning", ExitCode.notFinished],
      ["pending", ExitCode.notFinished],
      ["running", ExitCode.notFinished],
      ["succeeded", 0],
      ["partial", 3],
      ["failed", 3],
      ["cancelled", 5],
      ["budget_exhausted", 4],
    ]);
    expect(at("failed", 10)).toBe(4); // gave up with items unfinished
  });

  it("a recorded `planned` run is shown as pending; lists add unreadable", () => {
    expect(shownState("planned")).toBe("pending");
    expect(shownState("budget_exhausted")).toBe("budget_exhausted");
    expect(LISTED_STATES).toEqual([...RUN_STATES, "unreadable"]);
  });

  it("the README's exit-code table is the one the CLI prints", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    for (const { code, meaning } of EXIT_CODES) expect(readme).toContain(`| ${code} | ${meaning} |`);
  });
});

describe("csvField", () => {
  it.each([
    ["plain", "plain"],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ["two\nlines", '"two\nlines"'],
    [42, "42"],
    [true, "true"],
    [null, ""],
    [undefined, ""],
    [{ nested: { a: 1 }, list: [1, 2] }, '"{""nested"":{""a"":1},""list"":[1,2]}"'],
  ])("%j -> %s", (value, field) => {
    expect(csvField(value)).toBe(field);
  });
});

describe("--since", () => {
  const now = Date.parse("2026-11-22T12:00:00Z");
  it.each([
    ["90m", "2026-11-22T10:30:00.000Z"],
    ["24h", "2026-11-21T12:00:00.000Z"],
    ["7d", "2026-11-15T12:00:00.000Z"],
    ["2026-11-01", "2026-11-01T00:00:00.000Z"],
    ["2026-11-01T02:00:00Z", "2026-11-01T02:00:00.000Z"],
  ])("%s", (text, iso) => {
    expect(sinceFlag(text, now)?.toISOString()).toBe(iso);
  });
  it("refuses anything else, naming the flag", () => {
    expect(() => sinceFlag("last week", now)).toThrow('--since: expected a date (2026-11-22), a date-time (2026-11-22T02:00:00Z) or an age (90m, 24h, 7d), got "last week"');
  });
});

describe("log records", () => {
  const source = { labels: { task: "1" }, name: "sleepy-ab12c/task-1", time: "2026-11-22T02:00:00.000Z" };
  const line = JSON.stringify({
    severity: "WARNING",
    message: "item failed",
    time: "2026-11-22T02:00:05.000Z",
    "logging.googleapis.com/labels": { run: "r1", task: "1", attempt: "0", shard: "s000003" },
    item: "doc-7",
    reason: "error",
  });

  it("reads a structured line: severity, time, labels, the other fields", () => {
    expect(parseLogLine(line, source)).toEqual({
      time: "2026-11-22T02:00:05.000Z",
      severity: "WARNING",
      message: "item failed",
      labels: { run: "r1", task: "1", attempt: "0", shard: "s000003" },
      fields: { item: "doc-7", reason: "error" },
      source: "sleepy-ab12c/task-1",
    });
  });

  it("keeps any other line raw, with the file's labels", () => {
    expect(parseLogLine("FATAL ERROR: heap out of memory", source)).toMatchObject({ severity: "DEFAULT", message: "FATAL ERROR: heap out of memory", labels: { task: "1" } });
    expect(parseLogLine("   ", source)).toBeNull();
  });

  it("filters by run, task, shard and item (label or field)", () => {
    const r = parseLogLine(line, source)!;
    expect(matchesFilter(r, { runId: "r1", item: "doc-7", shard: "s000003", task: 1 })).toBe(true);
    expect(matchesFilter(r, { runId: "r2" })).toBe(false);
    expect(matchesFilter(r, { runId: "r1", item: "doc-8" })).toBe(false);
    expect(matchesFilter(r, { runId: "r1", shard: "s000004" })).toBe(false);
    expect(matchesFilter(r, { runId: "r1", task: 0 })).toBe(false);
  });
});
