/**
 * Gemini on Vertex AI over plain fetch (the REST `generateContent` method), so no SDK is needed:
 * `POST {baseUrl}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`
 * with an OAuth access token. The token comes from an injected `getAccessToken()`: on Cloud Run
 * `metadataServerToken()` (below) asks the metadata server for the service account's token; in
 * development pass `gcloud auth print-access-token` through SHARDRUN_VERTEX_ACCESS_TOKEN, or
 * inject google-auth-library's `getAccessToken`.
 */
import { z } from "zod";
import { InvalidInputError, NonRetriableError } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";
import { postJson, resolveHttpOptions, type HttpOptions, type HttpSettings } from "./http.js";
import {
  costOf,
  estimatedUsage,
  ModelPricing,
  parseChatRequest,
  type ChatModel,
  type ChatRequest,
  type ChatResult,
  type CompleteOptions,
  type FinishReason,
  type TokenUsage,
} from "./port.js";

export interface GeminiChatModelOptions extends HttpOptions {
  /** e.g. "gemini-2.5-flash". */
  model: string;
  /** The Google Cloud project that is billed. */
  project: string;
  /**
   * Vertex AI region, or "global".
   * @default "us-central1"
   */
  location?: string;
  /** Gives an OAuth access token for each attempt; cache inside it, as `metadataServerToken` does. */
  getAccessToken: () => Promise<string>;
  /**
   * Scheme and host the path is appended to; set by tests to a local fake server.
   * @default "https://{location}-aiplatform.googleapis.com" ("https://aiplatform.googleapis.com" for "global")
   */
  baseUrl?: string;
  /** Turns usage into `costUsd`. @default none (no costUsd in results) */
  pricing?: ModelPricing;
}

const Part = z.object({ text: z.string().optional(), thought: z.boolean().optional() });

/** The parts of a GenerateContentResponse we use; the rest is ignored, not trusted. */
export const GeminiResponse = z.object({
  candidates: z
    .array(
      z.object({
        content: z.object({ role: z.string().optional(), parts: z.array(Part).default([]) }).optional(),
        finishReason: z.string().optional(),
      }),
    )
    .optional(),
  promptFeedback: z.object({ blockReason: z.string().optional(), blockReasonMessage: z.string().optional() }).optional(),
  usageMetadata: z
    .object({
      promptTokenCount: z.number().int().min(0).default(0),
      candidatesTokenCount: z.number().int().min(0).default(0),
      /** Thinking models (2.5 and later) bill these as output tokens. */
      thoughtsTokenCount: z.number().int().min(0).default(0),
      totalTokenCount: z.number().int().min(0).optional(),
    })
    .optional(),
  modelVersion: z.string().optional(),
});
export type GeminiResponse = z.infer<typeof GeminiResponse>;

// Vertex names appear in URLs: keep them to what Google allows, so nothing odd lands in a path.
const Options = z.object({
  model: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]*$/, "Expected `model` to be a model id, e.g. \"gemini-2.5-flash\""),
  project: z.string().regex(/^[a-z0-9][a-z0-9:.-]*$/, "Expected `project` to be a Google Cloud project id"),
  location: z.string().regex(/^[a-z0-9-]+$/, "Expected `location` to be a region like \"us-central1\" or \"global\"").default("us-central1"),
  getAccessToken: z.custom<() => Promise<string>>((v) => typeof v === "function", { message: "Expected `getAccessToken` to be a function" }),
  baseUrl: z.url({ message: "Expected `baseUrl` to be a URL" }).optional(),
  pricing: ModelPricing.optional(),
});

export class GeminiChatModel implements ChatModel {
  readonly name: string;
  readonly #model: string;
  readonly #url: string;
  readonly #getAccessToken: () => Promise<string>;
  readonly #pricing: ModelPricing | undefined;
  readonly #http: HttpSettings;

  constructor(options: GeminiChatModelOptions) {
    const parsed = Options.safeParse(options);
    if (!parsed.success) throw new InvalidInputError(`GeminiChatModel: ${formatZodError(parsed.error)}`);
    const { model, project, location } = parsed.data;
    const host = location === "global" ? "https://aiplatform.googleapis.com" : `https://${location}-aiplatform.googleapis.com`;
    const base = (parsed.data.baseUrl ?? host).replace(/\/+$/, "");
    this.#url = `${base}/v1/projects/${project}/locations/${location}/publishers/google/models/${model}:generateContent`;
    this.#model = model;
    this.#getAccessToken = parsed.data.getAccessToken;
    this.#pricing = parsed.data.pricing;
    this.#http = resolveHttpOptions(options, "GeminiChatModel");
    this.name = `gemini:${model}`;
  }

  async complete(request: ChatRequest, options: CompleteOptions = {}): Promise<ChatResult> {
    const req = parseChatRequest(request);
    const body = toGeminiBody(req);
    const json = await postJson(
      {
        what: `vertex generateContent (${this.#model})`,
        url: this.#url,
        headers: async () => ({ authorization: `Bearer ${await this.#getAccessToken()}` }),
        body,
      },
      this.#http,
      options,
    );
    return fromGeminiResponse(json, req, this.#model, this.#pricing);
  }
}

/**
 * The request body. System messages become `systemInstruction` (Gemini has no system role);
 * assistant turns are role "model".
 */
export function toGeminiBody(req: ChatRequest): Record<string, unknown> {
  const system = req.messages.filter((m) => m.role === "system").map((m) => m.content);
  const contents = req.messages
    .filter((m) => m.role !== "system")
    .map((m) => ({ role: m.role === "assistant" ? "model" : "user", parts: [{ text: m.content }] }));
  if (contents.length === 0) throw new NonRetriableError("invalid chat request: Gemini needs at least one user or assistant message besides system messages");
  const generationConfig = {
    ...(req.maxTokens === undefined ? {} : { maxOutputTokens: req.maxTokens }),
    ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    ...(req.stop === undefined ? {} : { stopSequences: req.stop }),
    ...(req.json ? { responseMimeType: "application/json" } : {}),
  };
  return {
    contents,
    ...(system.length > 0 ? { systemInstruction: { parts: [{ text: system.join("\n\n") }] } } : {}),
    ...(Object.keys(generationConfig).length > 0 ? { generationConfig } : {}),
  };
}

export function fromGeminiResponse(json: unknown, req: ChatRequest, model: string, pricing?: ModelPricing): ChatResult {
  const what = `vertex generateContent (${model})`;
  const parsed = GeminiResponse.safeParse(Array.isArray(json) && json.length === 1 ? json[0] : json);
  if (!parsed.success) throw new NonRetriableError(`${what} answered an unexpected body: ${formatZodError(parsed.error)}`);
  const { candidates, promptFeedback, usageMetadata: meta, modelVersion } = parsed.data;
  const candidate = candidates?.[0];
  if (!candidate) {
    // No candidate at all means the prompt itself was refused: the same prompt will be again.
    const reason = promptFeedback?.blockReason;
    if (!reason) throw new NonRetriableError(`${what} answered an unexpected body: candidates: none, and no promptFeedback.blockReason`);
    const detail = promptFeedback.blockReasonMessage ? `: ${promptFeedback.blockReasonMessage}` : "";
    throw new NonRetriableError(`${what}: prompt blocked (${reason}${detail})`);
  }
  const text = (candidate.content?.parts ?? [])
    .filter((p) => !p.thought && p.text !== undefined)
    .map((p) => p.text)
    .join("");
  let usage: TokenUsage;
  if (meta) {
    const outputTokens = meta.candidatesTokenCount + meta.thoughtsTokenCount;
    usage = { inputTokens: meta.promptTokenCount, outputTokens, totalTokens: meta.totalTokenCount ?? meta.promptTokenCount + outputTokens };
  } else {
    usage = estimatedUsage(req, text);
  }
  return {
    text,
    usage,
    model: modelVersion ?? model,
    finishReason: finishReasonOf(candidate.finishReason),
    ...(pricing ? { costUsd: costOf(usage, pricing) } : {}),
  };
}

function finishReasonOf(reason: string | undefined): FinishReason {
  switch (reason) {
    case "STOP":
      return "stop";
    case "MAX_TOKENS":
      return "length";
    case "SAFETY":
    case "RECITATION":
    case "BLOCKLIST":
    case "PROHIBITED_CONTENT":
    case "SPII":
    case "IMAGE_SAFETY":
      return "content_filter";
    default:
      return "other";
  }
}

export interface MetadataServerTokenOptions {
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /**
   * The token endpoint of the metadata server.
   * @default "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
   */
  url?: string;
  /** @default Date.now */
  now?: () => number;
}

const MetadataToken = z.object({ access_token: z.string().min(1), expires_in: z.number().min(0) });

/**
 * An access token from the metadata server of Cloud Run (or GCE, GKE), cached until a minute
 * before it expires; concurrent callers share one fetch.
 */
export function metadataServerToken(options: MetadataServerTokenOptions = {}): () => Promise<string> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const url = options.url ?? "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";
  const now = options.now ?? Date.now;
  let cached: { token: string; until: number } | undefined;
  let pending: Promise<string> | undefined;
  const load = async (): Promise<string> => {
    let response: Response;
    try {
      response = await fetchImpl(url, { headers: { "Metadata-Flavor": "Google" }, signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      throw new Error(`metadata server unreachable at ${url}: not on Google Cloud? Set SHARDRUN_VERTEX_ACCESS_TOKEN or inject getAccessToken`, { cause: error });
    }
    if (!response.ok) throw new Error(`metadata server token request failed: HTTP ${response.status}`);
    const parsed = MetadataToken.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) throw new Error(`metadata server token response: ${formatZodError(parsed.error)}`);
    cached = { token: parsed.data.access_token, until: now() + Math.max(0, parsed.data.expires_in - 60) * 1000 };
    return cached.token;
  };
  return async () => {
    if (cached && now() < cached.until) return cached.token;
    pending ??= load().finally(() => (pending = undefined));
    return pending;
  };
}
