/** Durable steps: after a kill or a stop, a resumed item does not repeat a step that finished. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ExitCode } from "../../src/core/errors.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { ROOT, sleep, tempDir } from "./helpers.js";
import { planSingleShard, startWorker } from "./worker-harness.js";

const STEPPER = join(ROOT, "test", "fixtures", "jobs", "stepper.ts");

function events(log: string): { kind: string; key: string; step: string; pid: string }[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [kind, key, step, pid] = l.split(" ");
      return { kind: kind!, key: key!, step: step!, pid: pid! };
    });
}

async function output(h: Awaited<ReturnType<typeof planSingleShard>>) {
  const lines: { key: string; output: { results: string[] } }[] = [];
  for await (const l of mergedOutput(h.store, h.run.runId)) lines.push(JSON.parse(l) as (typeof lines)[number]);
  return lines;
}

describe("durable steps", () => {
  it("eager steps: after a SIGKILL mid-item, no finished step runs again", async () => {
    const dir = tempDir();
    const log = join(dir, "steps.log");
    const h = await planSingleShard(STEPPER, { count: "3", stepMs: "300", log, record: "eager" }, join(dir, "store"));
    const first = startWorker(h, 0);
    // Kill once the second item's "search" step has finished and "answer" is under way.
    for (let i = 0; i < 200; i++) {
      const ev = events(log);
      if (ev.some((e) => e.kind === "start" && e.key === "doc-1" && e.step === "answer")) break;
      await sleep(25);
    }
    first.child.kill("SIGKILL");
    await first.exited;
    const finishedBefore = events(log).filter((e) => e.kind === "end").map((e) => `${e.key}/${e.step}`);
    expect(finishedBefore).toContain("doc-1/search");

    const second = startWorker(h, 1);
    expect(await second.exited).toBe(ExitCode.ok);
    const starts = events(log).filter((e) => e.kind === "start");
    for (const step of finishedBefore) {
      expect(starts.filter((e) => `${e.key}/${e.step}` === step)).toHaveLength(1);
    }
    // The interrupted step ran again (it had not finished), exactly once more.
    expect(starts.filter((e) => e.key === "doc-1" && e.step === "answer")).toHaveLength(2);

    const out = await output(h);
    expect(out.map((l) => l.key).sort()).toEqual(["doc-0", "doc-1", "doc-2"]);
    // Each finished step's spend counts once: steps finished before the kill, but not yet in a
    // checkpoint, bring their spend back from their own objects. (The interrupted step had not
    // reported its spend when it died.)
    expect((await h.readCp())!.usage.tokens).toBe(3 * 3 * 10);
    // Results replayed from the store are the ones first computed, idempotency keys included.
    const doc1 = out.find((l) => l.key === "doc-1")!;
    expect(doc1.output.results[0]).toMatch(/^plan:1:shardrun-[0-9a-f]{40}$/);
  });

  it("checkpoint steps: a stop (SIGTERM) records finished steps with the last checkpoint", async () => {
    const dir = tempDir();
    const log = join(dir, "steps.log");
    const h = await planSingleShard(STEPPER, { count: "1", stepMs: "2500", log, record: "checkpoint" }, join(dir, "store"));
    const first = startWorker(h, 0);
    for (let i = 0; i < 400; i++) {
      if (events(log).some((e) => e.kind === "start" && e.step === "search")) break;
      await sleep(25);
    }
    first.child.kill("SIGTERM"); // "search" is aborted after the grace; "plan" had finished
    expect(await first.exited).toBe(ExitCode.retryTask);
    const cp = (await h.readCp())!;
    expect(Object.keys(cp.steps["0"] ?? {})).toEqual(["plan"]);

    const second = startWorker(h, 1);
    expect(await second.exited).toBe(ExitCode.ok);
    const starts = events(log).filter((e) => e.kind === "start" && e.key === "doc-0");
    expect(starts.filter((e) => e.step === "plan")).toHaveLength(1);
    expect(starts.filter((e) => e.step === "search")).toHaveLength(2);
    expect((await h.readCp())!.steps).toEqual({}); // dropped once the items were done
    expect((await output(h)).map((l) => l.key)).toEqual(["doc-0"]);
  });
});
