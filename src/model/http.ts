/**
 * The HTTP behaviour every remote model adapter shares: one JSON POST with a per-attempt timeout
 * on top of the caller's signal, retries of 408/409/429/5xx, network errors, timeouts and
 * unreadable bodies with exponential backoff and jitter (`nextRetryDelay` from core), Retry-After
 * honoured, and errors that steer shardrun's item-retry layer:
 *
 * - other 4xx (400, 401, 403, 404, 422, …) -> `NonRetriableError`, never retried;
 * - 429 still failing after the last attempt, or a Retry-After longer than `maxRetryAfterMs`
 *   -> `RetryAfterError(ms)`, so the item is retried later instead of holding a slot;
 * - 5xx, network or timeout failures after the last attempt -> `ModelCallError` (retriable);
 * - the caller's signal aborted -> its reason, at once, with no retry.
 *
 * Error messages carry the status and the API's own message, never a credential: every value of
 * an auth header is scrubbed from them, as are strings shaped like API keys and access tokens.
 */
import { z } from "zod";
import { nextRetryDelay, RetryPolicy } from "../core/backoff.js";
import { InvalidInputError, NonRetriableError, RetryAfterError, isShardrunError } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";
import type { CompleteOptions } from "./port.js";
import { sleep } from "../core/time.js";

/** Retries of one model call inside one item try. Short: the item-retry layer is the next line. */
export const DEFAULT_MODEL_RETRY = { attempts: 4, minDelayMs: 500, maxDelayMs: 20_000, factor: 2, jitter: true } satisfies RetryPolicy;

export interface HttpOptions {
  /**
   * Time limit of one attempt (headers and body), in ms. A timed-out attempt is retried.
   * @default 60000
   */
  timeoutMs?: number;
  /**
   * Retries of one call; unset fields keep these defaults.
   * @default { attempts: 4, minDelayMs: 500, maxDelayMs: 20000, factor: 2, jitter: true }
   */
  retry?: RetryOverrides;
  /**
   * The longest Retry-After waited for inside the call. A longer one ends the call at once with
   * `RetryAfterError`, so that the worker, not a sleeping request, does the waiting.
   * @default 30000
   */
  maxRetryAfterMs?: number;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Source of jitter, injected by tests. @default Math.random */
  random?: () => number;
}

const rules = RetryPolicy.shape;
/**
 * Overrides of DEFAULT_MODEL_RETRY, checked with RetryPolicy's own rules. Not
 * `RetryPolicy.partial()`: that would fill unset fields with the item policy's defaults.
 */
export const RetryOverrides = z.strictObject({
  attempts: rules.attempts.unwrap().optional(),
  minDelayMs: rules.minDelayMs.unwrap().optional(),
  maxDelayMs: rules.maxDelayMs.unwrap().optional(),
  factor: rules.factor.unwrap().optional(),
  jitter: rules.jitter.unwrap().optional(),
});
export type RetryOverrides = z.infer<typeof RetryOverrides>;

const HttpSettings = z.strictObject({
  timeoutMs: z.number().int().min(1).default(60_000),
  retry: RetryOverrides.default({}).transform((r): RetryPolicy => {
    const set = Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
    return { ...DEFAULT_MODEL_RETRY, ...set };
  }),
  maxRetryAfterMs: z.number().int().min(0).default(30_000),
});

export interface HttpSettings extends z.output<typeof HttpSettings> {
  fetch: typeof fetch;
  random: () => number;
}

/** Validates adapter options once, at construction, with the field named. */
export function resolveHttpOptions(options: HttpOptions = {}, what = "model adapter"): HttpSettings {
  const { timeoutMs, retry, maxRetryAfterMs, fetch = globalThis.fetch, random = Math.random } = options;
  const parsed = HttpSettings.safeParse({ timeoutMs, retry, maxRetryAfterMs });
  if (!parsed.success) throw new InvalidInputError(`${what}: ${formatZodError(parsed.error)}`);
  if (typeof fetch !== "function") throw new InvalidInputError(`${what}: Expected \`fetch\` to be a function`);
  if (typeof random !== "function") throw new InvalidInputError(`${what}: Expected \`random\` to be a function`);
  return { ...parsed.data, fetch, random };
}

/** A remote model call that failed for a reason that may pass (5xx, network, timeout): retry the item. */
export class ModelCallError extends Error {
  readonly code = "MODEL_CALL_FAILED";
  /** HTTP status of the last attempt; undefined for network errors and timeouts. */
  readonly status: number | undefined;
  readonly attempts: number;
  constructor(message: string, status: number | undefined, attempts: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ModelCallError";
    this.status = status;
    this.attempts = attempts;
  }
}

export interface PostJsonRequest {
  /** Names the call in error messages, e.g. "openai chat completions (gpt-4o-mini)". */
  what: string;
  url: string;
  /** Headers, or a function giving them per attempt (an access token may be refreshed). */
  headers: Record<string, string> | (() => Promise<Record<string, string>>);
  body: unknown;
}

type Outcome =
  | { ok: true; body: unknown }
  | { ok: false; retriable: boolean; status?: number; message: string; retryAfterMs?: number; cause?: unknown };

const RETRIABLE_STATUS = new Set([408, 409, 429]);
const HINTS: Partial<Record<number, string>> = {
  401: "check the credentials (API key or access token)",
  403: "the credentials lack permission for this model or project",
  404: "check the model name, the project and location, and the base URL",
};

/** POSTs `body` as JSON and returns the parsed JSON of a 2xx answer; see the module comment for failures. */
export async function postJson(request: PostJsonRequest, settings: HttpSettings, options: CompleteOptions = {}): Promise<unknown> {
  const { signal, limit } = options;
  const policy = settings.retry;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const once = () => attemptOnce(request, settings, signal);
    const outcome = await (limit ? limit(once) : once());
    if (outcome.ok) return outcome.body;

    const status = outcome.status === undefined ? "" : `HTTP ${outcome.status}: `;
    const message = `${request.what} failed: ${status}${outcome.message}`;
    if (!outcome.retriable) {
      const hint = outcome.status === undefined ? undefined : HINTS[outcome.status];
      throw new NonRetriableError(hint ? `${message} (${hint})` : message);
    }
    if (outcome.retryAfterMs !== undefined && outcome.retryAfterMs > settings.maxRetryAfterMs) {
      throw new RetryAfterError(outcome.retryAfterMs, `${message}; retry after ${outcome.retryAfterMs} ms`);
    }
    if (attempt >= policy.attempts) {
      const tries = `after ${attempt} attempt${attempt === 1 ? "" : "s"}`;
      if (outcome.status === 429 || outcome.retryAfterMs !== undefined) {
        const wait = outcome.retryAfterMs ?? nextRetryDelay(policy, attempt, settings.random);
        throw new RetryAfterError(wait, `${message} (${tries}); retry after ${wait} ms`);
      }
      throw new ModelCallError(`${message} (${tries})`, outcome.status, attempt, { cause: outcome.cause });
    }
    const delayMs = outcome.retryAfterMs ?? nextRetryDelay(policy, attempt, settings.random);
    options.onRetry?.({ attempt, delayMs, reason: outcome.message, ...(outcome.status === undefined ? {} : { status: outcome.status }) });
    await sleep(delayMs, signal);
  }
}

async function attemptOnce(request: PostJsonRequest, settings: HttpSettings, signal: AbortSignal | undefined): Promise<Outcome> {
  // One controller per attempt, fed by the caller's signal and a timer, both released in
  // `finally`: AbortSignal.any() over a long-lived ctx.signal would keep every attempt alive.
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`timed out after ${settings.timeoutMs} ms`));
  }, settings.timeoutMs);
  let headers: Record<string, string> = {};
  let phase = "credentials";
  try {
    headers = typeof request.headers === "function" ? await untilAborted(request.headers(), controller.signal) : request.headers;
    phase = "network error";
    const response = await settings.fetch(request.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...headers },
      body: JSON.stringify(request.body),
      signal: controller.signal,
    });
    const text = await response.text();
    return interpret(response, text, secretsOf(headers));
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    if (timedOut) return { ok: false, retriable: true, message: `timed out after ${settings.timeoutMs} ms` };
    if (isShardrunError(error, "NON_RETRIABLE")) throw error; // from a token provider that cannot succeed
    return { ok: false, retriable: true, message: redact(`${phase}: ${networkMessage(error)}`, secretsOf(headers)), cause: error };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

function interpret(response: Response, text: string, secrets: string[]): Outcome {
  const status = response.status;
  if (status >= 200 && status < 300) {
    try {
      return { ok: true, body: JSON.parse(text) as unknown };
    } catch {
      // A cut connection or a proxy page: the next attempt may well get the real answer.
      return { ok: false, retriable: true, status, message: `unreadable JSON body: ${snippet(text, secrets)}` };
    }
  }
  const retryAfterMs = retryAfterOf(response.headers);
  const apiMessage = apiErrorMessage(text, secrets);
  const message = response.statusText ? `${response.statusText}: ${apiMessage}` : apiMessage;
  return {
    ok: false,
    retriable: RETRIABLE_STATUS.has(status) || status >= 500,
    status,
    message,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** `error.message` of an OpenAI or Google error body (Vertex may wrap it in an array), else a snippet. */
function apiErrorMessage(text: string, secrets: string[]): string {
  const ErrorBody = z.object({ error: z.object({ message: z.string() }) });
  try {
    const json = JSON.parse(text) as unknown;
    const parsed = ErrorBody.safeParse(Array.isArray(json) ? json[0] : json);
    if (parsed.success) return snippet(parsed.data.error.message, secrets);
  } catch {
    // not JSON: fall through to the raw text
  }
  return snippet(text, secrets) || "(empty body)";
}

function snippet(text: string, secrets: string[]): string {
  const flat = redact(text, secrets).replace(/\s+/g, " ").trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat;
}

function networkMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  const code = typeof cause?.code === "string" ? cause.code : undefined;
  const detail = typeof cause?.message === "string" ? cause.message : undefined;
  return [error.message, code ?? detail].filter(Boolean).join(": ");
}

const SENSITIVE_HEADER = /authorization|api-key|token|secret/i;

function secretsOf(headers: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (!SENSITIVE_HEADER.test(name)) continue;
    out.push(value);
    const bare = value.replace(/^\s*(Bearer|Basic)\s+/i, "");
    if (bare !== value) out.push(bare);
  }
  return out;
}

/** Scrubs credentials: the given secrets, and anything shaped like an OpenAI key or a Google token. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join("[redacted]");
  return out
    .replace(/\bsk-[A-Za-z0-9_*-]{6,}/g, "sk-[redacted]")
    .replace(/\bya29\.[A-Za-z0-9_.-]+/g, "ya29.[redacted]")
    .replace(/\b(Bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]");
}

function retryAfterOf(headers: Headers): number | undefined {
  // OpenAI sends `retry-after-ms` beside `retry-after`; it is the more precise of the two.
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.ceil(Number(ms));
  const value = headers.get("retry-after");
  return value === null ? undefined : parseRetryAfter(value);
}

/**
 * Retry-After in ms: delta-seconds ("120", decimals accepted) or an HTTP date (a date in the past
 * is 0). Undefined when unreadable, so that the backoff policy decides instead.
 */
export function parseRetryAfter(value: string, now: number = Date.now()): number | undefined {
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.ceil(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** `promise`, or the signal's reason as soon as it aborts (a token fetch knows no signal). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as unknown);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as unknown);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export { sleep };
