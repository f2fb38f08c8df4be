/**
 * OpenAI-compatible Chat Completions over plain fetch: OpenAI itself, and the many servers that
 * speak its protocol (vLLM, Ollama, LiteLLM, OpenRouter, Gemini's OpenAI endpoint, …).
 * `POST {baseUrl}/chat/completions` with `Authorization: Bearer <key>`.
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

export const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1";

export interface OpenAIChatModelOptions extends HttpOptions {
  /** The model id the server knows, e.g. "gpt-4o-mini". */
  model: string;
  /** Sent as `Authorization: Bearer`; never logged, never in an error message. */
  apiKey: string;
  /**
   * Everything before `/chat/completions`.
   * @default "https://api.openai.com/v1"
   * @example "http://localhost:11434/v1"
   */
  baseUrl?: string;
  /** Turns usage into `costUsd`. @default none (no costUsd in results) */
  pricing?: ModelPricing;
  /** Extra headers, e.g. `OpenAI-Organization`. @default {} */
  headers?: Record<string, string>;
}

/** The parts of a chat.completion object we use; the rest is ignored, not trusted. */
export const OpenAIChatResponse = z.object({
  model: z.string().optional(),
  choices: z
    .array(
      z.object({
        message: z.object({
          content: z.string().nullish(),
          refusal: z.string().nullish(),
        }),
        finish_reason: z.string().nullish(),
      }),
    )
    .min(1, "Expected at least one choice"),
  usage: z
    .object({
      prompt_tokens: z.number().int().min(0),
      completion_tokens: z.number().int().min(0),
      total_tokens: z.number().int().min(0),
    })
    .nullish(),
});
export type OpenAIChatResponse = z.infer<typeof OpenAIChatResponse>;

const Options = z.object({
  model: z.string().min(1, "Expected `model` to be a model id, e.g. \"gpt-4o-mini\""),
  apiKey: z.string().min(1, "Expected `apiKey` to be a non-empty string"),
  baseUrl: z.url({ message: "Expected `baseUrl` to be a URL, e.g. \"https://api.openai.com/v1\"" }).optional(),
  pricing: ModelPricing.optional(),
  headers: z.record(z.string(), z.string()).optional(),
});

export class OpenAIChatModel implements ChatModel {
  readonly name: string;
  readonly #model: string;
  readonly #apiKey: string;
  readonly #url: string;
  readonly #pricing: ModelPricing | undefined;
  readonly #headers: Record<string, string>;
  readonly #http: HttpSettings;

  constructor(options: OpenAIChatModelOptions) {
    const parsed = Options.safeParse(options);
    if (!parsed.success) throw new InvalidInputError(`OpenAIChatModel: ${formatZodError(parsed.error)}`);
    this.#model = parsed.data.model;
    this.#apiKey = parsed.data.apiKey;
    this.#url = `${(parsed.data.baseUrl ?? OPENAI_DEFAULT_BASE_URL).replace(/\/+$/, "")}/chat/completions`;
    this.#pricing = parsed.data.pricing;
    this.#headers = parsed.data.headers ?? {};
    this.#http = resolveHttpOptions(options, "OpenAIChatModel");
    this.name = `openai:${this.#model}`;
  }

  async complete(request: ChatRequest, options: CompleteOptions = {}): Promise<ChatResult> {
    const req = parseChatRequest(request);
    const body = toOpenAIBody(this.#model, req);
    const json = await postJson(
      {
        what: `openai chat completions (${this.#model})`,
        url: this.#url,
        headers: { ...this.#headers, authorization: `Bearer ${this.#apiKey}` },
        body,
      },
      this.#http,
      options,
    );
    return fromOpenAIResponse(json, req, this.#model, this.#pricing);
  }
}

/** The request body: only the fields the caller set, so server defaults stay in force. */
export function toOpenAIBody(model: string, req: ChatRequest): Record<string, unknown> {
  return {
    model,
    messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
    ...(req.maxTokens === undefined ? {} : { max_tokens: req.maxTokens }),
    ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    ...(req.stop === undefined ? {} : { stop: req.stop }),
    ...(req.json ? { response_format: { type: "json_object" } } : {}),
  };
}

export function fromOpenAIResponse(json: unknown, req: ChatRequest, model: string, pricing?: ModelPricing): ChatResult {
  const parsed = OpenAIChatResponse.safeParse(json);
  // A 200 with a foreign shape is a server that does not speak this protocol: retrying cannot help.
  if (!parsed.success) throw new NonRetriableError(`openai chat completions (${model}) answered an unexpected body: ${formatZodError(parsed.error)}`);
  const choice = parsed.data.choices[0]!;
  const text = choice.message.content ?? choice.message.refusal ?? "";
  const u = parsed.data.usage;
  const usage: TokenUsage = u
    ? { inputTokens: u.prompt_tokens, outputTokens: u.completion_tokens, totalTokens: u.total_tokens }
    : estimatedUsage(req, text);
  return {
    text,
    usage,
    model: parsed.data.model ?? model,
    finishReason: choice.message.refusal && !choice.message.content ? "content_filter" : finishReasonOf(choice.finish_reason),
    ...(pricing ? { costUsd: costOf(usage, pricing) } : {}),
  };
}

function finishReasonOf(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case "stop":
    case "length":
    case "content_filter":
      return reason;
    default:
      return "other";
  }
}
