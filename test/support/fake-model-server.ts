/**
 * A local HTTP server that answers like the model APIs shardrun speaks: OpenAI Chat Completions
 * (`POST …/chat/completions`) and Vertex AI `generateContent` (`POST …/models/{model}:generateContent`).
 * It checks request bodies the way the real APIs do (a bad one is a 400 in the API's error
 * shape), records every request with its arrival time, and can be scripted per request: 429 with
 * Retry-After, 5xx, slow answers, unreadable bodies, dropped connections.
 *
 * Default answers come from the local deterministic model, so an agent job run against the fake
 * gets the same plausible, cited answers as on the local model, with usage reported the way each
 * API reports it.
 *
 * Harsher than the real thing on purpose: a 401 echoes the whole presented credential (OpenAI
 * echoes a masked one), so tests prove the adapters scrub it.
 *
 * @example
 * const server = await FakeModelServer.start({ apiKey: "sk-test" });
 * server.rateLimitNext(2, 1);            // two 429s with Retry-After: 1
 * … run things against server.openaiBaseUrl …
 * expect(server.maxInWindow(1000)).toBeLessThanOrEqual(20);
 * await server.close();
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { LocalChatModel } from "../../src/model/local.js";
import type { ChatMessage, ChatRequest } from "../../src/model/port.js";

export type FakeApi = "openai" | "gemini";

export interface RecordedRequest {
  /** Arrival time, ms since the epoch (`Date.now()`), taken before any scripted delay. */
  at: number;
  /** 1 for the first request the server saw, then 2, 3, … */
  seq: number;
  method: string;
  path: string;
  api: FakeApi | "unknown";
  /** The model named by the body (OpenAI) or the path (Vertex). */
  model?: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  body: unknown;
  /** The conversation in port shape, when the body was valid. */
  messages?: ChatMessage[];
  /** Status the server answered (or was about to, when the client went away first). */
  status: number;
  /** Set when the client closed the connection before the answer was sent (timeouts, aborts). */
  clientAborted: boolean;
}

/** How to answer one request; unset fields take the defaults (200 with a generated answer). */
export interface FakeStep {
  /** @default 200 */
  status?: number;
  /** Retry-After header: a number of seconds, or a raw value such as an HTTP date. */
  retryAfter?: number | string;
  /** Wait this long before answering. @default the server's `delayMs` */
  delayMs?: number;
  /** Error message in the API's error shape (non-2xx). */
  message?: string;
  /** Completion text of a 200. @default the local model's answer */
  text?: string;
  /** Usage reported with a 200; `null` leaves usage out. @default the local model's usage */
  usage?: { input: number; output: number; total?: number; thoughts?: number } | null;
  /** Raw finish reason in the API's vocabulary ("length", "MAX_TOKENS", …). */
  finishReason?: string;
  /** Replaces the whole body: a string is sent as-is (malformed JSON), an object as JSON. */
  body?: string | object;
  /** Destroy the connection without answering (a network error for the client). */
  drop?: boolean;
}

export interface FakeModelServerOptions {
  /** The only credential accepted (`Authorization: Bearer <apiKey>`). @default any credential */
  apiKey?: string;
  /** Delay of every unscripted answer, ms. @default 0 */
  delayMs?: number;
}

const OpenAIRequest = z.object({
  model: z.string().min(1),
  messages: z.array(z.object({ role: z.enum(["system", "developer", "user", "assistant"]), content: z.string() })).min(1),
  max_tokens: z.number().int().min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).optional(),
  response_format: z.object({ type: z.enum(["text", "json_object", "json_schema"]) }).optional(),
});

const TextParts = z.array(z.object({ text: z.string() })).min(1);
const GeminiRequest = z.object({
  contents: z.array(z.object({ role: z.enum(["user", "model"]), parts: TextParts })).min(1),
  systemInstruction: z.object({ role: z.string().optional(), parts: TextParts }).optional(),
  generationConfig: z
    .object({
      maxOutputTokens: z.number().int().min(1).optional(),
      temperature: z.number().min(0).max(2).optional(),
      stopSequences: z.array(z.string()).max(5).optional(),
      responseMimeType: z.string().optional(),
    })
    .optional(),
});

const GEMINI_PATH = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/([^/:]+):generateContent$/;
const GOOGLE_STATUS: Record<number, string> = { 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE" };

export class FakeModelServer {
  readonly #server: Server;
  readonly #options: FakeModelServerOptions;
  readonly #local = new LocalChatModel();
  #script: FakeStep[] = [];
  #recorded: RecordedRequest[] = [];
  #delayMs: number;
  /** e.g. "http://127.0.0.1:41234" */
  readonly url: string;

  private constructor(server: Server, url: string, options: FakeModelServerOptions) {
    this.#server = server;
    this.url = url;
    this.#options = options;
    this.#delayMs = options.delayMs ?? 0;
  }

  static async start(options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
    let self: FakeModelServer | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      const at = Date.now();
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => void self!.#handle(at, req.method ?? "GET", req.url ?? "/", req.headers, Buffer.concat(chunks).toString("utf8"), res));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    self = new FakeModelServer(server, `http://127.0.0.1:${port}`, options);
    return self;
  }

  /** Base URL for the OpenAI adapter (`{url}/v1`). */
  get openaiBaseUrl(): string {
    return `${this.url}/v1`;
  }

  /** Base URL for the Gemini adapter (the path `/v1/projects/…` is appended to it). */
  get vertexBaseUrl(): string {
    return this.url;
  }

  /** Answers the next `times` requests with `step` (after steps already queued). */
  next(step: FakeStep, times = 1): this {
    for (let i = 0; i < times; i++) this.#script.push(step);
    return this;
  }

  /** The next `times` requests get 429, with `Retry-After: retryAfter` when given. */
  rateLimitNext(times: number, retryAfter?: number | string): this {
    return this.next({ status: 429, message: "Rate limit reached for requests", ...(retryAfter === undefined ? {} : { retryAfter }) }, times);
  }

  /** The next `times` requests fail with `status` (default 500). */
  failNext(times: number, status = 500, message = "The server had an error while processing your request."): this {
    return this.next({ status, message }, times);
  }

  /** The next `times` requests are answered after `delayMs`. */
  slowNext(times: number, delayMs: number): this {
    return this.next({ delayMs }, times);
  }

  /** The next `times` requests get a 200 whose body is cut JSON ("json") or JSON of a foreign shape ("shape"). */
  malformedNext(times: number, kind: "json" | "shape" = "json"): this {
    return this.next({ body: kind === "json" ? '{"choices": [{"message": {"content": "cut he' : { unexpected: true } }, times);
  }

  /** The next `times` connections are destroyed without an answer. */
  dropNext(times: number): this {
    return this.next({ drop: true }, times);
  }

  /** Delay of every unscripted answer from now on. */
  setDelay(ms: number): this {
    this.#delayMs = ms;
    return this;
  }

  /** Copies of the recorded requests, oldest first; optionally of one API only. */
  requests(filter: { api?: FakeApi } = {}): RecordedRequest[] {
    return this.#recorded.filter((r) => filter.api === undefined || r.api === filter.api).map((r) => ({ ...r }));
  }

  /** The largest number of requests that arrived within any window of `windowMs` (half-open). */
  maxInWindow(windowMs = 1000): number {
    const times = this.#recorded.map((r) => r.at).sort((a, b) => a - b);
    let best = 0;
    for (let lo = 0, hi = 0; hi < times.length; hi++) {
      while (times[hi]! - times[lo]! >= windowMs) lo++;
      best = Math.max(best, hi - lo + 1);
    }
    return best;
  }

  /** Forgets recorded requests and queued steps. */
  reset(): void {
    this.#recorded = [];
    this.#script = [];
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve, reject) => this.#server.close((e) => (e ? reject(e) : resolve())));
  }

  async #handle(at: number, method: string, url: string, headers: IncomingHttpHeaders, raw: string, res: ServerResponse): Promise<void> {
    const path = new URL(url, "http://fake").pathname;
    const gemini = GEMINI_PATH.exec(path);
    const api: FakeApi | "unknown" = path.endsWith("/chat/completions") ? "openai" : gemini ? "gemini" : "unknown";
    let body: unknown = raw;
    try {
      body = JSON.parse(raw);
    } catch {
      // kept as text: the record shows what arrived
    }
    const record: RecordedRequest = { at, seq: this.#recorded.length + 1, method, path, api, headers, body, status: 0, clientAborted: false };
    this.#recorded.push(record);
    let dropped = false;
    res.on("close", () => {
      if (!res.writableFinished && !dropped) record.clientAborted = true;
    });

    const step = this.#script.shift() ?? {};
    const delay = step.delayMs ?? this.#delayMs;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (record.clientAborted || res.destroyed) return;
    if (step.drop) {
      dropped = true;
      res.socket?.destroy();
      return;
    }
    const send = (status: number, payload: string | object, extra: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { "content-type": "application/json", ...extra });
      res.end(typeof payload === "string" ? payload : JSON.stringify(payload));
    };
    const fail = (status: number, message: string, extra: Record<string, string> = {}) =>
      send(status, api === "gemini" ? { error: { code: status, message, status: GOOGLE_STATUS[status] ?? "UNKNOWN" } } : { error: { message, type: status === 429 ? "rate_limit_exceeded" : "invalid_request_error", param: null, code: null } }, extra);

    if (method !== "POST" || api === "unknown") return fail(404, `No route for ${method} ${path}`);
    const auth = headers.authorization ?? "";
    if (this.#options.apiKey !== undefined && auth !== `Bearer ${this.#options.apiKey}`) {
      return fail(401, `Incorrect API key provided: ${auth.replace(/^Bearer\s+/i, "")}. You can find your API key in your account settings.`);
    }
    if (step.status !== undefined && step.status !== 200) {
      const retryAfter: Record<string, string> = step.retryAfter === undefined ? {} : { "retry-after": String(step.retryAfter) };
      return fail(step.status, step.message ?? `HTTP ${step.status}`, retryAfter);
    }
    if (step.body !== undefined) return send(200, step.body);

    const request = api === "openai" ? fromOpenAI(body) : fromGemini(body);
    if (!request.ok) return fail(400, request.message);
    record.messages = request.value.messages;
    record.model = api === "openai" ? (body as { model: string }).model : gemini![3]!;
    const local = await this.#local.complete(request.value);
    const text = step.text ?? local.text;
    const usage = step.usage === undefined ? { input: local.usage.inputTokens, output: local.usage.outputTokens } : step.usage;
    if (api === "openai") {
      send(200, {
        id: `chatcmpl-fake-${record.seq}`,
        object: "chat.completion",
        created: Math.floor(at / 1000),
        model: record.model,
        choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: step.finishReason ?? "stop" }],
        ...(usage ? { usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.total ?? usage.input + usage.output } } : {}),
      });
    } else {
      send(200, {
        candidates: [{ content: { role: "model", parts: [{ text }] }, finishReason: step.finishReason ?? "STOP" }],
        ...(usage
          ? {
              usageMetadata: {
                promptTokenCount: usage.input,
                candidatesTokenCount: usage.output,
                ...(usage.thoughts ? { thoughtsTokenCount: usage.thoughts } : {}),
                totalTokenCount: usage.total ?? usage.input + usage.output + (usage.thoughts ?? 0),
                trafficType: "ON_DEMAND",
              },
            }
          : {}),
        modelVersion: `${record.model}-fake-001`,
        createTime: new Date(at).toISOString(),
        responseId: `fake-${record.seq}`,
      });
    }
  }
}

type Converted = { ok: true; value: ChatRequest } | { ok: false; message: string };

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
}

function fromOpenAI(body: unknown): Converted {
  const parsed = OpenAIRequest.safeParse(body);
  if (!parsed.success) return { ok: false, message: `Invalid request: ${issues(parsed.error)}` };
  const b = parsed.data;
  return {
    ok: true,
    value: {
      messages: b.messages.map((m) => ({ role: m.role === "developer" ? "system" : m.role, content: m.content })),
      ...(b.max_tokens === undefined ? {} : { maxTokens: b.max_tokens }),
      ...(b.stop === undefined ? {} : { stop: typeof b.stop === "string" ? [b.stop] : b.stop }),
      ...(b.response_format?.type === "json_object" ? { json: true } : {}),
    },
  };
}

function fromGemini(body: unknown): Converted {
  const parsed = GeminiRequest.safeParse(body);
  if (!parsed.success) return { ok: false, message: `Invalid JSON payload received. ${issues(parsed.error)}` };
  const b = parsed.data;
  const text = (parts: { text: string }[]) => parts.map((p) => p.text).join("");
  const messages: ChatMessage[] = [
    ...(b.systemInstruction ? [{ role: "system" as const, content: text(b.systemInstruction.parts) }] : []),
    ...b.contents.map((c) => ({ role: c.role === "model" ? ("assistant" as const) : ("user" as const), content: text(c.parts) })),
  ];
  const g = b.generationConfig;
  return {
    ok: true,
    value: {
      messages,
      ...(g?.maxOutputTokens === undefined ? {} : { maxTokens: g.maxOutputTokens }),
      ...(g?.stopSequences === undefined ? {} : { stop: g.stopSequences.slice(0, 4) }),
      ...(g?.responseMimeType === "application/json" ? { json: true } : {}),
    },
  };
}
