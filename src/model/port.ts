/**
 * The model port: the one narrow interface job code sees for chat completion, whichever provider
 * answers (the local deterministic model, an OpenAI-compatible server, Gemini on Vertex AI).
 * Requests and results are zod schemas so that a result stored by `ctx.step` is validated when it
 * is read back (`ctx.step("answer", () => model.complete(req), { schema: ChatResult })`).
 */
import { z } from "zod";
import { NonRetriableError } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";

export const ChatRole = z.enum(["system", "user", "assistant"]);
export type ChatRole = z.infer<typeof ChatRole>;

export const ChatMessage = z.strictObject({ role: ChatRole, content: z.string() });
export type ChatMessage = z.infer<typeof ChatMessage>;

export const ChatRequest = z.strictObject({
  /** The conversation, oldest first. System messages become the provider's system instruction. */
  messages: z.array(ChatMessage).min(1, "Expected at least one message"),
  /** Upper bound on generated tokens. @default the provider's own limit */
  maxTokens: z.number().int().min(1).optional(),
  /** @default the provider's default */
  temperature: z.number().min(0).max(2).optional(),
  /** Generation stops before any of these strings. OpenAI accepts at most 4. */
  stop: z.array(z.string().min(1)).max(4).optional(),
  /**
   * Ask for a JSON object as the whole answer (OpenAI `response_format: json_object`, Gemini
   * `responseMimeType: application/json`). OpenAI also wants the word "JSON" in a message.
   * @default false
   */
  json: z.boolean().optional(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const TokenUsage = z.strictObject({
  inputTokens: z.number().int().min(0),
  /** Generated tokens, thinking tokens included (they are billed as output). */
  outputTokens: z.number().int().min(0),
  totalTokens: z.number().int().min(0),
  /** Set when the provider reported no usage and it was estimated as ceil(chars / 4). */
  estimated: z.boolean().optional(),
});
export type TokenUsage = z.infer<typeof TokenUsage>;

/** Normalised across providers; "content_filter" covers Gemini's SAFETY, RECITATION, … */
export const FinishReason = z.enum(["stop", "length", "content_filter", "other"]);
export type FinishReason = z.infer<typeof FinishReason>;

export const ChatResult = z.strictObject({
  text: z.string(),
  usage: TokenUsage,
  /** The model that answered, as the provider names it (may be more precise than the one asked for). */
  model: z.string(),
  finishReason: FinishReason,
  /** Price of this call in USD, when the adapter knows the model's pricing. */
  costUsd: z.number().min(0).optional(),
});
export type ChatResult = z.infer<typeof ChatResult>;

export const ModelPricing = z.strictObject({
  /** USD per million input (prompt) tokens. @example 0.15 */
  inputUsdPerMTok: z.number().min(0),
  /** USD per million output tokens, thinking tokens included. @example 0.6 */
  outputUsdPerMTok: z.number().min(0),
});
export type ModelPricing = z.infer<typeof ModelPricing>;

/**
 * Runs one HTTP attempt under a shared limit (e.g. `(fn) => ctx.limit("model", fn)`). It wraps
 * every attempt, retries included, because every attempt is a request the provider counts.
 */
export type CallLimiter = <T>(fn: () => Promise<T>) => Promise<T>;

/** A retry about to happen inside one call, for logs. */
export interface RetryInfo {
  /** The attempt that failed, 1-based. */
  attempt: number;
  /** Wait before the next attempt. */
  delayMs: number;
  /** HTTP status of the failed attempt; absent for network errors and timeouts. */
  status?: number;
  reason: string;
}

export interface CompleteOptions {
  /** Aborts the call at once, with no retry: pass `ctx.signal`. */
  signal?: AbortSignal;
  /** Wraps each HTTP attempt, for a run-wide rate limit. @default none */
  limit?: CallLimiter;
  /**
   * Called before each retry, e.g. `(r) => ctx.log.warn("model retry", { ...r })`.
   * @default none
   */
  onRetry?: (info: RetryInfo) => void;
}

export interface ChatModel {
  /** "provider:model", e.g. "openai:gpt-4o-mini", for logs and step names. */
  readonly name: string;
  /**
   * One chat completion. Rejects with `NonRetriableError` for a request that cannot succeed
   * (bad request, bad key, unknown model), with `RetryAfterError` when the provider keeps rate
   * limiting, with the signal's reason when `signal` aborts, and with `ModelCallError` (retriable)
   * when retries of a server or network failure ran out.
   */
  complete(request: ChatRequest, options?: CompleteOptions): Promise<ChatResult>;
}

/** USD for `usage` at `pricing`, rounded to a millionth of a cent so sums stay readable. */
export function costOf(usage: Pick<TokenUsage, "inputTokens" | "outputTokens">, pricing: ModelPricing): number {
  const usd = (usage.inputTokens * pricing.inputUsdPerMTok + usage.outputTokens * pricing.outputUsdPerMTok) / 1e6;
  return Math.round(usd * 1e8) / 1e8;
}

/** The rough token count used where a provider reports none: about four characters a token. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** Usage for a provider that reported none (some compatible servers): estimated, and marked so. */
export function estimatedUsage(request: ChatRequest, text: string): TokenUsage {
  const inputTokens = request.messages.reduce((sum, m) => sum + estimateTokens(m.content), 0);
  const outputTokens = estimateTokens(text);
  return { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens, estimated: true };
}

/** What a budget counts for one result: `ctx.usage(usageOf(result))`. */
export function usageOf(result: ChatResult): { tokens: number; usd: number } {
  return { tokens: result.usage.totalTokens, usd: result.costUsd ?? 0 };
}

/**
 * Wraps a model so every successful completion reports its spend, e.g. to `ctx.usage`. A failed
 * call reports nothing: providers do not bill requests that return no completion.
 *
 * @example
 * const model = metered(base, (spend) => ctx.usage(spend));
 */
export function metered(model: ChatModel, onUsage: (spend: { tokens: number; usd: number }, result: ChatResult) => void): ChatModel {
  return {
    name: model.name,
    async complete(request, options) {
      const result = await model.complete(request, options);
      onUsage(usageOf(result), result);
      return result;
    },
  };
}

/**
 * Parses a request at the adapter's edge. A bad request is the caller's bug and retrying it
 * cannot help, hence `NonRetriableError`, with the field named: `messages: Expected at least one message`.
 */
export function parseChatRequest(request: unknown): ChatRequest {
  const parsed = ChatRequest.safeParse(request);
  if (!parsed.success) throw new NonRetriableError(`invalid chat request: ${formatZodError(parsed.error)}`);
  return parsed.data;
}
