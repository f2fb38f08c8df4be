/**
 * `createModel(config, env)`: picks and builds a model adapter. The local deterministic model is
 * the default, so a job runs anywhere; an operator switches a run to a real model with
 * environment variables alone, as long as the job leaves those fields unset in its config.
 *
 * Precedence, field by field: the `config` argument, then `env`, then the defaults below.
 * SHARDRUN_MODEL and SHARDRUN_MODEL_PRICING apply only to the provider SHARDRUN_MODEL_PROVIDER
 * names (or to any provider when it is unset).
 *
 * | env key | what | default |
 * | --- | --- | --- |
 * | SHARDRUN_MODEL_PROVIDER | "local", "openai" or "gemini" | "local" |
 * | SHARDRUN_MODEL | model id | "shardrun-local-1" / "gpt-4o-mini" / "gemini-2.5-flash" |
 * | SHARDRUN_MODEL_TIMEOUT_MS | per-attempt timeout of remote calls | 60000 |
 * | SHARDRUN_MODEL_PRICING | "<input>,<output>" USD per million tokens, for USD budgets | none |
 * | OPENAI_API_KEY | the key (another name via `apiKeyEnv`) | required for openai |
 * | OPENAI_BASE_URL | any OpenAI-compatible server | https://api.openai.com/v1 |
 * | GOOGLE_CLOUD_PROJECT, then SHARDRUN_PROJECT | Vertex AI project | required for gemini |
 * | SHARDRUN_VERTEX_LOCATION | Vertex AI region or "global" | "us-central1" |
 * | SHARDRUN_VERTEX_BASE_URL | Vertex endpoint (tests, private endpoints) | https://{location}-aiplatform.googleapis.com |
 * | SHARDRUN_VERTEX_ACCESS_TOKEN | a fixed token, e.g. `gcloud auth print-access-token` | the metadata server's token |
 */
import { z } from "zod";
import { InvalidInputError } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";
import { GeminiChatModel, metadataServerToken } from "./gemini.js";
import { RetryOverrides } from "./http.js";
import { LocalChatModel } from "./local.js";
import { OpenAIChatModel } from "./openai.js";
import { ModelPricing, type ChatModel } from "./port.js";

export * from "./port.js";
export { ModelCallError, parseRetryAfter, DEFAULT_MODEL_RETRY, RetryOverrides, type HttpOptions } from "./http.js";
export { LocalChatModel, type LocalChatModelOptions } from "./local.js";
export { OpenAIChatModel, type OpenAIChatModelOptions } from "./openai.js";
export { GeminiChatModel, metadataServerToken, type GeminiChatModelOptions } from "./gemini.js";

/** Every environment variable the model layer reads, in one map (see the table above). */
export const MODEL_ENV = {
  provider: "SHARDRUN_MODEL_PROVIDER",
  model: "SHARDRUN_MODEL",
  timeoutMs: "SHARDRUN_MODEL_TIMEOUT_MS",
  pricing: "SHARDRUN_MODEL_PRICING",
  openaiApiKey: "OPENAI_API_KEY",
  openaiBaseUrl: "OPENAI_BASE_URL",
  googleProject: "GOOGLE_CLOUD_PROJECT",
  project: "SHARDRUN_PROJECT",
  vertexLocation: "SHARDRUN_VERTEX_LOCATION",
  vertexBaseUrl: "SHARDRUN_VERTEX_BASE_URL",
  vertexAccessToken: "SHARDRUN_VERTEX_ACCESS_TOKEN",
} as const;

export const ModelProvider = z.enum(["local", "openai", "gemini"]);
export type ModelProvider = z.infer<typeof ModelProvider>;

export const DEFAULT_MODELS = {
  local: "shardrun-local-1",
  openai: "gpt-4o-mini",
  gemini: "gemini-2.5-flash",
} as const satisfies Record<ModelProvider, string>;

export const ModelConfig = z.strictObject({
  /** @default SHARDRUN_MODEL_PROVIDER, else "local" */
  provider: ModelProvider.optional(),
  /** @default SHARDRUN_MODEL, else DEFAULT_MODELS[provider] */
  model: z.string().min(1).optional(),
  /** OpenAI-compatible base URL, or the Vertex endpoint. @default OPENAI_BASE_URL / SHARDRUN_VERTEX_BASE_URL, else the provider's */
  baseUrl: z.url({ message: "Expected a URL, e.g. \"https://api.openai.com/v1\"" }).optional(),
  /** Name of the env var that holds the OpenAI-compatible API key. @default "OPENAI_API_KEY" */
  apiKeyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "Expected an environment variable name").optional(),
  /** Vertex AI project. @default GOOGLE_CLOUD_PROJECT, else SHARDRUN_PROJECT */
  project: z.string().min(1).optional(),
  /** Vertex AI region or "global". @default SHARDRUN_VERTEX_LOCATION, else "us-central1" */
  location: z.string().min(1).optional(),
  /** Per-attempt timeout of a remote call, ms. @default SHARDRUN_MODEL_TIMEOUT_MS, else 60000 */
  timeoutMs: z.number().int().min(1).optional(),
  /** Retries of one remote call; unset fields keep DEFAULT_MODEL_RETRY. @default DEFAULT_MODEL_RETRY */
  retry: RetryOverrides.optional(),
  /** Longest Retry-After waited inside a call. @default 30000 */
  maxRetryAfterMs: z.number().int().min(0).optional(),
  /** Turns usage into USD. @default SHARDRUN_MODEL_PRICING, else none (the local model is free) */
  pricing: ModelPricing.optional(),
  /** Simulated latency of the local model, ms. @default 0 */
  latencyMs: z.number().min(0).optional(),
});
export type ModelConfig = z.input<typeof ModelConfig>;

/** Things that cannot come from config: code to inject (tests, google-auth-library). */
export interface ModelDeps {
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Vertex AI token source. @default SHARDRUN_VERTEX_ACCESS_TOKEN, else `metadataServerToken()` */
  getAccessToken?: () => Promise<string>;
  /** Jitter source. @default Math.random */
  random?: () => number;
}

/** The configuration after env and defaults, without secrets: safe to log and to record in a run. */
export interface ResolvedModelConfig {
  provider: ModelProvider;
  model: string;
  baseUrl?: string;
  apiKeyEnv?: string;
  project?: string;
  location?: string;
  timeoutMs?: number;
  pricing?: ModelPricing;
}

const pricingFromEnv = z
  .string()
  .regex(/^\s*\d+(\.\d+)?\s*,\s*\d+(\.\d+)?\s*$/, `Expected ${MODEL_ENV.pricing} to be "<input>,<output>" in USD per million tokens, e.g. "0.15,0.6"`)
  .transform((v) => {
    const [input, output] = v.split(",").map(Number);
    return { inputUsdPerMTok: input!, outputUsdPerMTok: output! };
  });

const ModelEnv = z.object({
  [MODEL_ENV.provider]: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(ModelProvider.options, { message: 'Expected "local", "openai" or "gemini"' }))
    .optional(),
  [MODEL_ENV.model]: z.string().trim().min(1).optional(),
  [MODEL_ENV.timeoutMs]: z.string().regex(/^\s*\d+\s*$/, `Expected ${MODEL_ENV.timeoutMs} to be a whole number of ms`).transform(Number).optional(),
  [MODEL_ENV.pricing]: pricingFromEnv.optional(),
  [MODEL_ENV.openaiBaseUrl]: z.url({ message: `Expected ${MODEL_ENV.openaiBaseUrl} to be a URL` }).optional(),
  [MODEL_ENV.vertexBaseUrl]: z.url({ message: `Expected ${MODEL_ENV.vertexBaseUrl} to be a URL` }).optional(),
  [MODEL_ENV.googleProject]: z.string().trim().min(1).optional(),
  [MODEL_ENV.project]: z.string().trim().min(1).optional(),
  [MODEL_ENV.vertexLocation]: z.string().trim().min(1).optional(),
});

/** Empty strings count as unset: `FOO= cmd` is how people clear a variable. */
function envView(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.values(MODEL_ENV)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") out[key] = value;
  }
  return out;
}

function parseConfig(config: unknown): z.output<typeof ModelConfig> {
  const parsed = ModelConfig.safeParse(config ?? {});
  if (!parsed.success) throw new InvalidInputError(`model config: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

/** Applies env and defaults to `config`; throws `InvalidInputError` naming the field or env key. */
export function resolveModelConfig(config: ModelConfig = {}, env: NodeJS.ProcessEnv = process.env): ResolvedModelConfig {
  return resolve(parseConfig(config), env);
}

function resolve(c: z.output<typeof ModelConfig>, env: NodeJS.ProcessEnv): ResolvedModelConfig {
  const parsedEnv = ModelEnv.safeParse(envView(env));
  if (!parsedEnv.success) throw new InvalidInputError(`model environment: ${formatZodError(parsedEnv.error)}`);
  const e = parsedEnv.data;
  const envProvider = e[MODEL_ENV.provider];
  const provider = c.provider ?? envProvider ?? "local";
  // SHARDRUN_MODEL and its pricing describe the env's provider: a config that pins another
  // provider must not get, say, an OpenAI model id.
  const envModelApplies = envProvider === undefined || envProvider === provider;
  const model = c.model ?? (envModelApplies ? e[MODEL_ENV.model] : undefined) ?? DEFAULT_MODELS[provider];
  const timeoutMs = c.timeoutMs ?? e[MODEL_ENV.timeoutMs];
  const pricing = c.pricing ?? (envModelApplies ? e[MODEL_ENV.pricing] : undefined);
  const common = { provider, model, ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(pricing ? { pricing } : {}) };
  switch (provider) {
    case "local":
      return common;
    case "openai": {
      const baseUrl = c.baseUrl ?? e[MODEL_ENV.openaiBaseUrl];
      return { ...common, apiKeyEnv: c.apiKeyEnv ?? MODEL_ENV.openaiApiKey, ...(baseUrl ? { baseUrl } : {}) };
    }
    case "gemini": {
      const baseUrl = c.baseUrl ?? e[MODEL_ENV.vertexBaseUrl];
      const project = c.project ?? e[MODEL_ENV.googleProject] ?? e[MODEL_ENV.project];
      if (!project) {
        throw new InvalidInputError(
          `the gemini model provider needs a Google Cloud project: set ${MODEL_ENV.googleProject} (or ${MODEL_ENV.project}, or \`project\` in the model config)`,
        );
      }
      const location = c.location ?? e[MODEL_ENV.vertexLocation] ?? "us-central1";
      return { ...common, project, location, ...(baseUrl ? { baseUrl } : {}) };
    }
  }
}

/**
 * Builds the model a job calls. With no config and no env it is the local deterministic model.
 *
 * @example
 * const model = createModel(); // local, or whatever SHARDRUN_MODEL_PROVIDER says
 * const result = await model.complete({ messages }, { signal: ctx.signal });
 */
export function createModel(config: ModelConfig = {}, env: NodeJS.ProcessEnv = process.env, deps: ModelDeps = {}): ChatModel {
  const c = parseConfig(config);
  const resolved = resolve(c, env);
  const http = {
    ...(resolved.timeoutMs === undefined ? {} : { timeoutMs: resolved.timeoutMs }),
    ...(c.retry ? { retry: c.retry } : {}),
    ...(c.maxRetryAfterMs === undefined ? {} : { maxRetryAfterMs: c.maxRetryAfterMs }),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    ...(deps.random ? { random: deps.random } : {}),
    ...(resolved.pricing ? { pricing: resolved.pricing } : {}),
    ...(resolved.baseUrl ? { baseUrl: resolved.baseUrl } : {}),
  };
  switch (resolved.provider) {
    case "local":
      return new LocalChatModel({ model: resolved.model, ...(resolved.pricing ? { pricing: resolved.pricing } : {}), ...(c.latencyMs === undefined ? {} : { latencyMs: c.latencyMs }) });
    case "openai": {
      const keyEnv = resolved.apiKeyEnv ?? MODEL_ENV.openaiApiKey;
      const apiKey = env[keyEnv]?.trim();
      if (!apiKey) throw new InvalidInputError(`${keyEnv} is not set: the openai model provider needs an API key in it`);
      return new OpenAIChatModel({ ...http, model: resolved.model, apiKey });
    }
    case "gemini": {
      const fixed = env[MODEL_ENV.vertexAccessToken]?.trim();
      const getAccessToken = deps.getAccessToken ?? (fixed ? async () => fixed : metadataServerToken(deps.fetch ? { fetch: deps.fetch } : {}));
      return new GeminiChatModel({ ...http, model: resolved.model, project: resolved.project!, location: resolved.location!, getAccessToken });
    }
  }
}
