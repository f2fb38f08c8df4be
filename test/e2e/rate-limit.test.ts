/**
 * Run-wide rate limits: four tasks of research-sweep share one model limit, and the fake model
 * server, which sees every request of every task, never counts more than the limit in any
 * one-second window. The run is sized to keep all four tasks pushing against the limit for
 * several seconds, so a limit that was not applied (or applied per task) would show.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeModelServer } from "../support/fake-model-server.js";
import { ROOT, cli, tempDir } from "./helpers.js";

const bundled = JSON.parse(readFileSync(join(ROOT, "jobs", "research-sweep", "questions.json"), "utf8")) as { id: string; question: string }[];

/** `n` questions (the bundled ones over and over, under new ids) in a JSONL file. */
function questionsFile(dir: string, n: number): string {
  const file = join(dir, "questions.jsonl");
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ id: `q${i}`, question: bundled[i % bundled.length]!.question }));
  writeFileSync(file, lines.join("\n"));
  return file;
}

interface Status {
  state: string;
  items: { total: number; succeeded: number };
}

describe("rate limit", () => {
  let server: FakeModelServer;
  beforeAll(async () => {
    server = await FakeModelServer.start({ apiKey: "test", delayMs: 40 });
  });
  afterAll(async () => {
    await server.close();
  });

  async function sweep(questions: number, perSecond: number): Promise<Status> {
    const dir = tempDir();
    server.reset();
    const env = { SHARDRUN_MODEL_PROVIDER: "openai", OPENAI_BASE_URL: server.openaiBaseUrl, OPENAI_API_KEY: "test" };
    const args = ["--arg", `questions=${questionsFile(dir, questions)}`, "--arg", `perSecond=${perSecond}`];
    const r = await cli(["run", "research-sweep", "--local", "--json", "--tasks", "4", "--shards", "4", ...args], dir, env);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout) as Status;
    expect(status.items).toMatchObject({ total: questions, succeeded: questions });
    return status;
  }

  it("with 20 req/s over 4 tasks, the model server sees at most 20 requests in any one-second window", async () => {
    await sweep(64, 20);
    const requests = server.requests();
    expect(requests).toHaveLength(128); // a plan and an answer per question, no retries
    // Without the limit, 4 tasks with 2 calls in flight each and 40 ms answers would send ~200/s.
    expect(server.maxInWindow(1000)).toBeLessThanOrEqual(20);
    expect(server.maxInWindow(1000)).toBeGreaterThanOrEqual(15);
    // The limit set the pace of the whole run, not just of its busiest second.
    const first = requests[0]!.at;
    const last = requests[requests.length - 1]!.at;
    expect(last - first).toBeGreaterThanOrEqual(5000); // 128 requests at <= 20/s
  });

  it("a run can lower the job's limit with --arg perSecond", async () => {
    await sweep(24, 8);
    expect(server.requests()).toHaveLength(48);
    expect(server.maxInWindow(1000)).toBeLessThanOrEqual(8);
    expect(server.maxInWindow(1000)).toBeGreaterThanOrEqual(6);
  });
});
