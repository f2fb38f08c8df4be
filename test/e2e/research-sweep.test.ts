/**
 * research-sweep end to end: a task killed in the middle of an item resumes without repeating a
 * finished model call (counted at the fake model server), and a whole CLI run on the local model
 * answers every question with citations to real files.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ResearchAnswer } from "../../jobs/research-sweep/index.js";
import { ExitCode } from "../../src/core/errors.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { FakeModelServer, type RecordedRequest } from "../support/fake-model-server.js";
import { ROOT, cli, parseLines, sleep, tempDir } from "./helpers.js";
import { planSingleShard, startWorker } from "./worker-harness.js";

const JOB = "jobs/research-sweep/index.ts";

const QUESTIONS = [
  { id: "plimit", question: "How does p-limit handle concurrency?" },
  { id: "zod", question: "What does zod's safeParse return?" },
  { id: "debug", question: "How does the DEBUG environment variable enable debug namespaces?" },
];

/**
 * "plan:zod" for a recorded request: the task from the system message, the question from its
 * line. Read from the raw body, which is recorded on arrival (`messages` only once answered).
 */
function callOf(r: RecordedRequest): string {
  const messages = (r.body as { messages?: { role: string; content: string }[] }).messages ?? [];
  const system = messages.find((m) => m.role === "system")?.content ?? "";
  const user = messages.filter((m) => m.role === "user").at(-1)?.content ?? "";
  const task = /^task: (\w+)$/m.exec(system)?.[1] ?? "?";
  const question = /^Question: (.*)$/m.exec(user)?.[1] ?? "?";
  return `${task}:${QUESTIONS.find((q) => q.question === question)?.id ?? question}`;
}

const finished = (r: RecordedRequest) => r.status === 200 && !r.clientAborted;
const count = (calls: string[], call: string) => calls.filter((c) => c === call).length;

describe("research-sweep", () => {
  let server: FakeModelServer;
  beforeAll(async () => {
    server = await FakeModelServer.start({ apiKey: "test" });
  });
  afterAll(async () => {
    await server.close();
  });

  it("resumes after a SIGKILL mid-item without repeating a finished model call, and outputs each question once", async () => {
    const dir = tempDir();
    const file = join(dir, "questions.jsonl");
    writeFileSync(file, QUESTIONS.map((q) => JSON.stringify(q)).join("\n"));
    // concurrent=1 puts the model calls in a line (three plans, then the answers one by one), so
    // the kill can land while one answer is in flight and after another one finished.
    const h = await planSingleShard(JOB, { questions: file, concurrent: "1" }, join(dir, "store"));
    const env = { SHARDRUN_MODEL_PROVIDER: "openai", OPENAI_BASE_URL: server.openaiBaseUrl, OPENAI_API_KEY: "test" };
    server.reset();
    server.setDelay(700);

    const first = startWorker(h, 0, env);
    const answers = () => server.requests().filter((r) => callOf(r).startsWith("answer:"));
    for (let i = 0; i < 800 && answers().length < 2; i++) await sleep(25);
    expect(answers().length).toBeGreaterThanOrEqual(2);
    // The finished answer's eager step write follows its response by a few ms; the answer in
    // flight has 700 ms to go.
    await sleep(200);
    first.child.kill("SIGKILL");
    await first.exited;
    await sleep(50); // let the server see the dropped connection

    const before = server.requests();
    const done = before.filter(finished).map(callOf);
    const interrupted = before.filter((r) => !finished(r)).map(callOf);
    expect(done).toEqual(expect.arrayContaining(QUESTIONS.map((q) => `plan:${q.id}`)));
    expect(done.filter((c) => c.startsWith("answer:"))).toHaveLength(1);
    expect(interrupted).toHaveLength(1);
    expect(interrupted[0]).toMatch(/^answer:/);

    server.setDelay(0);
    const second = startWorker(h, 1, env);
    expect(await second.exited, second.log()).toBe(ExitCode.ok);

    const all = server.requests().map(callOf);
    // No call that had finished ran again; the interrupted one ran once more; nothing else.
    for (const call of done) expect(count(all, call), call).toBe(1);
    expect(count(all, interrupted[0]!)).toBe(2);
    expect(all.filter((c) => c.startsWith("plan:"))).toHaveLength(QUESTIONS.length);
    expect(all.filter((c) => c.startsWith("answer:"))).toHaveLength(QUESTIONS.length + 1);

    const out: { key: string; output: ResearchAnswer }[] = [];
    for await (const line of mergedOutput(h.store, h.run.runId)) out.push(JSON.parse(line) as (typeof out)[number]);
    expect(out.map((l) => l.key).sort()).toEqual(QUESTIONS.map((q) => q.id).sort());
    for (const { output } of out) {
      expect(output.citations.length, output.id).toBeGreaterThan(0);
      expect(output.usage.tokens).toBeGreaterThan(0);
      expect(output.model).toBe("gpt-4o-mini");
    }
  });

  it("runs the bundled questions through the CLI on the local model, citing files that exist", async () => {
    const dir = tempDir();
    // An empty provider counts as unset: the local model, whatever the caller's shell says.
    const env = { SHARDRUN_MODEL_PROVIDER: "" };
    const r = await cli(["run", "research-sweep", "--local", "--json", "--tasks", "2"], dir, env);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: { total: number; succeeded: number }; usage: { tokens: number } };
    expect(status.state).toBe("succeeded");
    expect(status.items.total).toBeGreaterThanOrEqual(10);
    expect(status.items.succeeded).toBe(status.items.total);

    const lines = parseLines<{ key: string; output: ResearchAnswer }>((await cli(["output", status.runId], dir, env)).stdout);
    expect(lines).toHaveLength(status.items.total);
    for (const { key, output } of lines) {
      expect(output.id).toBe(key);
      expect(output.model).toBe("shardrun-local-1");
      expect(output.citations.length, key).toBeGreaterThan(0);
      for (const c of output.citations) {
        expect(existsSync(join(ROOT, "node_modules", c.path)), c.path).toBe(true);
        expect(output.answer).toContain(`[${c.n}]`);
        expect(c.snippet.length).toBeGreaterThan(0);
      }
    }
    // Spend reported through ctx.usage adds up to what the outputs say they cost.
    expect(status.usage.tokens).toBe(lines.reduce((sum, l) => sum + l.output.usage.tokens, 0));
    const byKey = new Map(lines.map((l) => [l.key, l.output]));
    expect(byKey.get("zod-safeparse")?.citations.some((c) => c.path === "zod/README.md")).toBe(true);
    expect(byKey.get("p-limit-concurrency")?.citations.some((c) => c.path.endsWith("p-limit/readme.md"))).toBe(true);
  });
});
