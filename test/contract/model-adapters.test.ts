/**
 * Runs the ChatModel contract against the OpenAI-compatible and the Vertex Gemini adapters on
 * the fake model server, then checks the local deterministic model, `createModel` and the
 * pure helpers (Retry-After parsing, the fake's window count, the metadata token cache).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/core/errors.js";
import { GeminiChatModel, metadataServerToken } from "../../src/model/gemini.js";
import { DEFAULT_MODEL_RETRY, parseRetryAfter, redact, resolveHttpOptions } from "../../src/model/http.js";
import { createModel, resolveModelConfig } from "../../src/model/index.js";
import { LocalChatModel } from "../../src/model/local.js";
import { OpenAIChatModel } from "../../src/model/openai.js";
import { ChatResult, metered, type ChatRequest } from "../../src/model/port.js";
import { FakeModelServer } from "../support/fake-model-server.js";
import { modelAdapterContract } from "./model-contract.js";

modelAdapterContract("openai", {
  api: "openai",
  make: (server, apiKey, options) => new OpenAIChatModel({ ...options, model: "gpt-test", apiKey, baseUrl: server.openaiBaseUrl }),
  lengthReason: "length",
  expectWire(record) {
    expect(record.path).toBe("/v1/chat/completions");
    expect(record.body).toMatchObject({ model: "gpt-test", max_tokens: 50, temperature: 0.2, stop: ["END"], response_format: { type: "json_object" } });
    expect((record.body as { messages: { role: string }[] }).messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
  },
});

modelAdapterContract("gemini (vertex)", {
  api: "gemini",
  make: (server, token, options) =>
    new GeminiChatModel({ ...options, model: "gemini-test", project: "my-proj", location: "europe-west4", baseUrl: server.vertexBaseUrl, getAccessToken: async () => token }),
  lengthReason: "MAX_TOKENS",
  expectWire(record) {
    expect(record.path).toBe("/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-test:generateContent");
    expect(record.body).toEqual({
      systemInstruction: { parts: [{ text: "You answer in JSON." }] },
      contents: [
        { role: "user", parts: [{ text: "First question?" }] },
        { role: "model", parts: [{ text: "First answer." }] },
        { role: "user", parts: [{ text: "Second question?" }] },
      ],
      generationConfig: { maxOutputTokens: 50, temperature: 0.2, stopSequences: ["END"], responseMimeType: "application/json" },
    });
  },
});

describe("adapter specifics", () => {
  let server: FakeModelServer;
  beforeAll(async () => {
    server = await FakeModelServer.start();
  });
  afterAll(async () => {
    await server.close();
  });
  const gemini = () => new GeminiChatModel({ model: "g", project: "p", baseUrl: server.vertexBaseUrl, getAccessToken: async () => "t" });
  const hi: ChatRequest = { messages: [{ role: "user", content: "hi" }] };

  it("gemini counts thinking tokens as output and drops thought parts from the text", async () => {
    server.next({ body: { candidates: [{ content: { role: "model", parts: [{ text: "thinking…", thought: true }, { text: "Answer." }] }, finishReason: "STOP" }], usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 4, thoughtsTokenCount: 30, totalTokenCount: 44 } } });
    const result = await gemini().complete(hi);
    expect(result.text).toBe("Answer.");
    expect(result.usage).toEqual({ inputTokens: 10, outputTokens: 34, totalTokens: 44 });
  });

  it("gemini turns a blocked prompt into NonRetriableError with the reason", async () => {
    server.next({ body: { promptFeedback: { blockReason: "SAFETY" }, usageMetadata: { promptTokenCount: 3, totalTokenCount: 3 } } });
    await expect(gemini().complete(hi)).rejects.toThrow(/prompt blocked \(SAFETY\)/);
  });

  it("gemini maps SAFETY to content_filter and uses the host of the location by default", async () => {
    server.next({ finishReason: "SAFETY" });
    expect((await gemini().complete(hi)).finishReason).toBe("content_filter");
    let url = "";
    const capture = (async (u: string | URL | Request) => {
      url = String(u);
      return new Response("{}", { status: 404 });
    }) as typeof fetch;
    await expect(new GeminiChatModel({ model: "g", project: "p", location: "asia-northeast1", getAccessToken: async () => "t", fetch: capture }).complete(hi)).rejects.toThrow(/HTTP 404/);
    expect(url).toBe("https://asia-northeast1-aiplatform.googleapis.com/v1/projects/p/locations/asia-northeast1/publishers/google/models/g:generateContent");
  });

  it("rejects adapter options with the field named", () => {
    expect(() => new OpenAIChatModel({ model: "m", apiKey: "" })).toThrow(/apiKey/);
    expect(() => new OpenAIChatModel({ model: "m", apiKey: "k", timeoutMs: -1 })).toThrow(/timeoutMs/);
    expect(() => new GeminiChatModel({ model: "g", project: "Bad Project!", getAccessToken: async () => "t" })).toThrow(/project/);
  });
});

const DOCS = [
  "[1] Cloud Run Jobs",
  "Cloud Run Jobs run indexed tasks in parallel. Each task can be retried up to a maximum number of times.",
  "",
  "[2] Checkpoints",
  "A checkpoint records which items of a shard are done. Checkpoints live in Cloud Storage and are written with generation preconditions. Shards resume from their last checkpoint.",
  "",
  "[3] Cooking",
  "Risotto needs constant stirring and warm stock.",
].join("\n");

const answerRequest = (question: string, json = false): ChatRequest => ({
  messages: [
    { role: "system", content: "You answer from the documents only.\ntask: answer" },
    { role: "user", content: `${DOCS}\n\nQuestion: ${question}` },
  ],
  ...(json ? { json } : {}),
});

describe("LocalChatModel", () => {
  const model = new LocalChatModel();

  it("gives the same result to the same request, across instances, as a valid ChatResult", async () => {
    const req = answerRequest("Where do checkpoints live and how do shards resume?");
    const a = await model.complete(req);
    const b = await new LocalChatModel().complete(structuredClone(req));
    expect(b).toEqual(a);
    expect(ChatResult.parse(JSON.parse(JSON.stringify(a)))).toEqual(a);
    expect(a.model).toBe("shardrun-local-1");
  });

  it("plans sub-queries made of the question's keywords", async () => {
    const question = "How do Cloud Run Jobs retry failed tasks with checkpoints?";
    const result = await model.complete({ messages: [{ role: "system", content: "task: plan" }, { role: "user", content: question }], json: true });
    const { queries } = JSON.parse(result.text) as { queries: string[] };
    expect(queries[0]).toBe("cloud run jobs retry failed tasks");
    expect(queries.length).toBeGreaterThanOrEqual(2);
    expect(queries.length).toBeLessThanOrEqual(3);
    expect(new Set(queries).size).toBe(queries.length);
    const words = new Set(question.toLowerCase().match(/[a-z]+/g));
    for (const q of queries) for (const w of q.split(" ")) expect(words.has(w)).toBe(true);
    const plain = await model.complete({ messages: [{ role: "system", content: "task: plan" }, { role: "user", content: question }] });
    expect(plain.text.split("\n")).toEqual(queries);
  });

  it("answers by quoting the most relevant sentences with [n] markers that point at the documents", async () => {
    const result = await model.complete(answerRequest("Where do checkpoints live and how do shards resume?"));
    const cited = [...result.text.matchAll(/(.+?) \[(\d+)\](?: |$)/g)].map((m) => ({ sentence: m[1]!, doc: Number(m[2]) }));
    expect(cited.length).toBeGreaterThan(0);
    expect(cited[0]!.doc).toBe(2);
    for (const { sentence, doc } of cited) {
      expect([1, 2]).toContain(doc);
      // Extractive: every quoted sentence is verbatim from the document it cites.
      expect(DOCS.split(`[${doc}]`)[1]!.split(/\[\d\]/)[0]).toContain(sentence);
    }
    expect(result.text).not.toContain("[3]");
    const json = JSON.parse((await model.complete(answerRequest("Where do checkpoints live?", true))).text) as { answer: string; citations: number[] };
    expect(json.citations[0]).toBe(2);
    expect(json.answer).toContain("[2]");
  });

  it("says so, with no citation, when no document shares a keyword with the question", async () => {
    const result = await model.complete(answerRequest("What is the capital of Peru?"));
    expect(result.text).toBe("The provided documents do not answer the question.");
  });

  it("counts usage as ceil(chars / 4) and is free", async () => {
    const req = answerRequest("Where do checkpoints live?");
    const result = await model.complete(req);
    const input = req.messages.reduce((n, m) => n + Math.ceil(m.content.length / 4), 0);
    expect(result.usage).toEqual({ inputTokens: input, outputTokens: Math.ceil(result.text.length / 4), totalTokens: input + Math.ceil(result.text.length / 4) });
    expect(result.costUsd).toBe(0);
  });

  it("honours maxTokens, stop, pricing, the limiter and the signal", async () => {
    const req = answerRequest("Where do checkpoints live and how do shards resume?");
    const cut = await model.complete({ ...req, maxTokens: 5 });
    expect(cut).toMatchObject({ finishReason: "length", usage: { outputTokens: 5 } });
    expect(cut.text).toHaveLength(20);
    const stopped = await model.complete({ ...req, stop: ["[2]"] });
    expect(stopped.text).not.toContain("[2]");
    const priced = await new LocalChatModel({ pricing: { inputUsdPerMTok: 1, outputUsdPerMTok: 1 } }).complete(req);
    expect(priced.costUsd).toBeCloseTo(priced.usage.totalTokens / 1e6, 12);
    let limited = 0;
    await model.complete(req, { limit: (fn) => (limited++, fn()) });
    expect(limited).toBe(1);
    await expect(new LocalChatModel({ latencyMs: 5000 }).complete(req, { signal: AbortSignal.timeout(50) })).rejects.toThrow();
  });
});

describe("createModel", () => {
  let server: FakeModelServer;
  beforeAll(async () => {
    server = await FakeModelServer.start();
  });
  afterAll(async () => {
    await server.close();
  });
  const hello: ChatRequest = { messages: [{ role: "user", content: "hello" }] };

  it("defaults to the local model with no config and no env", () => {
    expect(createModel({}, {}).name).toBe("local:shardrun-local-1");
  });

  it("names the missing env var", () => {
    expect(() => createModel({ provider: "openai" }, {})).toThrow(/OPENAI_API_KEY is not set/);
    expect(() => createModel({ provider: "openai", apiKeyEnv: "MY_LLM_KEY" }, { OPENAI_API_KEY: "x" })).toThrow(/MY_LLM_KEY is not set/);
    expect(() => createModel({}, { SHARDRUN_MODEL_PROVIDER: "gemini" })).toThrow(/GOOGLE_CLOUD_PROJECT/);
  });

  it("rejects bad config and env with the field named", () => {
    expect(() => createModel({ timeoutMs: 0 } as never, {})).toThrow(InvalidInputError);
    expect(() => createModel({ timeoutMs: 0 }, {})).toThrow(/model config: timeoutMs/);
    expect(() => createModel({ provider: "claude" } as never, {})).toThrow(/provider/);
    expect(() => createModel({}, { SHARDRUN_MODEL_PROVIDER: "claude" })).toThrow(/SHARDRUN_MODEL_PROVIDER/);
    expect(() => createModel({}, { SHARDRUN_MODEL_PRICING: "cheap" })).toThrow(/SHARDRUN_MODEL_PRICING/);
  });

  it("switches to an OpenAI-compatible server by env alone; config wins over env", async () => {
    const env = { SHARDRUN_MODEL_PROVIDER: "openai", SHARDRUN_MODEL: "env-model", OPENAI_API_KEY: "sk-env", OPENAI_BASE_URL: server.openaiBaseUrl, SHARDRUN_MODEL_PRICING: "1,2" };
    const model = createModel({}, env);
    expect(model.name).toBe("openai:env-model");
    const result = await model.complete(hello);
    expect(result.costUsd).toBeCloseTo((result.usage.inputTokens + 2 * result.usage.outputTokens) / 1e6, 12);
    expect(server.requests().at(-1)).toMatchObject({ api: "openai", model: "env-model" });
    expect(createModel({ model: "config-model" }, env).name).toBe("openai:config-model");
    // SHARDRUN_MODEL names an OpenAI model here; a config pinning the local model ignores it.
    expect(createModel({ provider: "local" }, env).name).toBe("local:shardrun-local-1");
  });

  it("builds Gemini from env with a fixed access token", async () => {
    const env = { SHARDRUN_MODEL_PROVIDER: "gemini", GOOGLE_CLOUD_PROJECT: "proj-1", SHARDRUN_VERTEX_LOCATION: "global", SHARDRUN_VERTEX_BASE_URL: server.url, SHARDRUN_VERTEX_ACCESS_TOKEN: "ya29.fixed" };
    expect(resolveModelConfig({}, env)).toEqual({ provider: "gemini", model: "gemini-2.5-flash", project: "proj-1", location: "global", baseUrl: server.url });
    await createModel({}, env).complete(hello);
    expect(server.requests().at(-1)).toMatchObject({ api: "gemini", path: "/v1/projects/proj-1/locations/global/publishers/google/models/gemini-2.5-flash:generateContent" });
    expect(server.requests().at(-1)!.headers.authorization).toBe("Bearer ya29.fixed");
  });

  it("meters spend of each successful call", async () => {
    const spent: { tokens: number; usd: number }[] = [];
    const model = metered(createModel({ pricing: { inputUsdPerMTok: 1, outputUsdPerMTok: 1 } }, {}), (s) => spent.push(s));
    const result = await model.complete(hello);
    expect(spent).toEqual([{ tokens: result.usage.totalTokens, usd: result.costUsd }]);
  });
});

describe("model helpers", () => {
  it("parses Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("1", now)).toBe(1000);
    expect(parseRetryAfter(" 1.5 ", now)).toBe(1500);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:02 GMT", now)).toBe(2000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
  });

  it("keeps the model retry defaults for fields an override leaves unset", () => {
    expect(resolveHttpOptions({ retry: { attempts: 2, factor: undefined } }).retry).toEqual({ ...DEFAULT_MODEL_RETRY, attempts: 2 });
    expect(() => resolveHttpOptions({ retry: { attempts: 0 } }, "X")).toThrow(/X: retry.attempts/);
    expect(() => resolveHttpOptions({ retry: { tries: 2 } as never })).toThrow(/tries/);
  });

  it("redacts credentials from messages", () => {
    expect(redact("bad key sk-proj-abcdef123456 and ya29.a0AfH6SM token", [])).toBe("bad key sk-[redacted] and ya29.[redacted] token");
    expect(redact("echo my-secret-value", ["my-secret-value"])).toBe("echo [redacted]");
  });

  it("counts the most requests in any window at the fake server", async () => {
    const server = await FakeModelServer.start();
    try {
      const model = new OpenAIChatModel({ model: "m", apiKey: "k", baseUrl: server.openaiBaseUrl });
      await Promise.all([1, 2, 3].map(() => model.complete({ messages: [{ role: "user", content: "hi" }] })));
      await new Promise((r) => setTimeout(r, 300));
      await model.complete({ messages: [{ role: "user", content: "hi" }] });
      expect(server.requests()).toHaveLength(4);
      expect(server.maxInWindow(1000)).toBe(4);
      expect(server.maxInWindow(200)).toBe(3);
    } finally {
      await server.close();
    }
  });

  it("caches the metadata server's token until a minute before it expires", async () => {
    let now = 0;
    let calls = 0;
    const fakeFetch = (async (_url: unknown, init?: RequestInit) => {
      calls++;
      expect(new Headers(init?.headers).get("metadata-flavor")).toBe("Google");
      return new Response(JSON.stringify({ access_token: `tok-${calls}`, expires_in: 3600, token_type: "Bearer" }));
    }) as typeof fetch;
    const token = metadataServerToken({ fetch: fakeFetch, now: () => now });
    expect(await Promise.all([token(), token()])).toEqual(["tok-1", "tok-1"]);
    now = 3_539_000;
    expect(await token()).toBe("tok-1");
    now = 3_540_000;
    expect(await token()).toBe("tok-2");
  });
});
