import { describe, expect, it } from "vitest";
import { silentLogger, withFields } from "../../src/core/log.js";
import { createLogger, type LoggerOptions } from "../../src/log/logger.js";

const NOW = new Date("2026-11-22T02:00:00.000Z");
const LABELS = "logging.googleapis.com/labels";

function capture(options: Partial<LoggerOptions> = {}) {
  const lines: string[] = [];
  const logger = createLogger({ format: "json", write: (l) => lines.push(l), now: () => NOW, ...options });
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, parsed };
}

describe("createLogger json", () => {
  it("writes one JSON line with severity, message, time, labels and fields", () => {
    const { logger, lines, parsed } = capture({ labels: { run: "r1" } });
    logger.info("shard done", { items: 3 });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith("\n")).toBe(true);
    expect(lines[0]!.slice(0, -1)).not.toContain("\n");
    expect(parsed()[0]).toEqual({
      severity: "INFO",
      message: "shard done",
      time: NOW.toISOString(),
      [LABELS]: { run: "r1" },
      items: 3,
    });
  });

  it("maps each method to its Cloud Logging severity", () => {
    const { logger, parsed } = capture({ level: "DEBUG" });
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    expect(parsed().map((l) => [l.severity, l.message])).toEqual([
      ["DEBUG", "d"],
      ["INFO", "i"],
      ["WARNING", "w"],
      ["ERROR", "e"],
    ]);
  });

  it("writes empty labels when none were given", () => {
    const { logger, parsed } = capture();
    logger.info("x");
    expect(parsed()[0]![LABELS]).toEqual({});
  });

  it("escapes messages so that a newline cannot split the line", () => {
    const { logger, lines, parsed } = capture();
    logger.error("line one\nline two");
    expect(lines[0]!.slice(0, -1)).not.toContain("\n");
    expect(parsed()[0]!.message).toBe("line one\nline two");
  });

  it("fields cannot override severity, message or labels", () => {
    const { logger, parsed } = capture({ labels: { run: "r1" } });
    logger.error("real message", { severity: "DEBUG", message: "spoofed", [LABELS]: { run: "other" } });
    const line = parsed()[0]!;
    expect(line.severity).toBe("ERROR");
    expect(line.message).toBe("real message");
    expect(line[LABELS]).toEqual({ run: "r1" });
  });
});

describe("child", () => {
  it("merges labels into the parent's, the child's winning on a clash", () => {
    const { logger, parsed } = capture({ labels: { run: "r1", shard: "s0" } });
    logger.child({ shard: "s00007", item: "k3" }).info("x");
    expect(parsed()[0]![LABELS]).toEqual({ run: "r1", shard: "s00007", item: "k3" });
  });

  it("chains, and leaves the parent's labels alone", () => {
    const { logger, parsed } = capture({ labels: { run: "r1" } });
    const grandchild = logger.child({ shard: "s1" }).child({ item: "k" });
    grandchild.info("g");
    logger.info("p");
    expect(parsed().map((l) => l[LABELS])).toEqual([{ run: "r1", shard: "s1", item: "k" }, { run: "r1" }]);
  });

  it("keeps the parent's level and sink", () => {
    const { logger, lines } = capture({ level: "WARNING" });
    const child = logger.child({ a: "b" });
    child.info("dropped");
    child.warn("kept");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).message).toBe("kept");
  });
});

describe("level filtering", () => {
  const emitAll = (level?: LoggerOptions["level"]) => {
    const { logger, parsed } = capture(level ? { level } : {});
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    return parsed().map((l) => l.message);
  };

  it("drops DEBUG by default (INFO)", () => {
    expect(emitAll()).toEqual(["i", "w", "e"]);
  });

  it("keeps only lines at or above the level", () => {
    expect(emitAll("DEBUG")).toEqual(["d", "i", "w", "e"]);
    expect(emitAll("WARNING")).toEqual(["w", "e"]);
    expect(emitAll("ERROR")).toEqual(["e"]);
  });
});

describe("createLogger text", () => {
  it("writes severity, label values, message and fields on one line", () => {
    const lines: string[] = [];
    const logger = createLogger({ format: "text", write: (l) => lines.push(l), labels: { run: "r1", shard: "s0" } });
    logger.warn("slow item", { ms: 1200 });
    logger.info("plain");
    expect(lines).toEqual(['WARNING [r1 s0] slow item {"ms":1200}\n', "INFO    [r1 s0] plain\n"]);
  });

  it("omits the tag brackets without labels and the fields when empty", () => {
    const lines: string[] = [];
    createLogger({ format: "text", write: (l) => lines.push(l) }).error("oops", {});
    expect(lines).toEqual(["ERROR   oops\n"]);
  });
});

describe("silentLogger", () => {
  it("writes nothing and its child is silent too", () => {
    expect(() => silentLogger.info("x")).not.toThrow();
    expect(silentLogger.child({ a: "b" })).toBe(silentLogger);
  });
});

describe("withFields", () => {
  it("adds its fields to every line, children's included, without touching labels", () => {
    const { logger, parsed } = capture({ labels: { run: "r1" } });
    const traced = withFields(logger, { "logging.googleapis.com/trace": "projects/p/traces/t" });
    traced.info("a", { n: 1 });
    traced.child({ shard: "s1" }).warn("b");
    expect(parsed()).toEqual([
      { severity: "INFO", message: "a", time: NOW.toISOString(), [LABELS]: { run: "r1" }, "logging.googleapis.com/trace": "projects/p/traces/t", n: 1 },
      { severity: "WARNING", message: "b", time: NOW.toISOString(), [LABELS]: { run: "r1", shard: "s1" }, "logging.googleapis.com/trace": "projects/p/traces/t" },
    ]);
  });
});

describe("messages are text, not format strings", () => {
  it("keeps %s and %d as written", () => {
    const { logger, parsed } = capture();
    logger.info("100%s done %d", { a: 1 });
    expect(parsed()[0]!.message).toBe("100%s done %d");
  });
});
