/**
 * A tiny router for the scheduler service: methods and path patterns with `{param}` segments,
 * including Google-style custom methods (`/v1/runs/{id}:rerun`). Errors are data: an
 * `HttpError` carries the status and the `{error: {code, message, field}}` body the client gets.
 */

/** The error body of every 4xx/5xx answer. `field` names the input at fault, when one is. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** An error to answer with as it is: never a stack, never internal details. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, options: { field?: string; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.field = options.field;
    this.headers = options.headers ?? {};
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

interface Route<H> {
  method: Method;
  pattern: string;
  regex: RegExp;
  names: string[];
  handler: H;
}

export type Match<H> =
  | { kind: "found"; handler: H; params: Record<string, string>; pattern: string }
  | { kind: "method-not-allowed"; allow: Method[] }
  | { kind: "not-found" };

// A parameter is one path segment up to a custom-method colon: run ids, job and schedule names
// never hold ":" or "/", so `/v1/runs/{id}` and `/v1/runs/{id}:rerun` never both match.
const PARAM = "([^/:]+)";

export class Router<H> {
  readonly #routes: Route<H>[] = [];

  /**
   * Adds a route.
   * @example router.add("POST", "/v1/runs/{id}:rerun", handler)
   */
  add(method: Method, pattern: string, handler: H): this {
    if (!pattern.startsWith("/")) throw new TypeError(`Expected a route pattern starting with "/", got ${JSON.stringify(pattern)}`);
    const names: string[] = [];
    const source = pattern
      .split(/(\{[a-zA-Z]+\})/)
      .map((part) => {
        const name = /^\{([a-zA-Z]+)\}$/.exec(part)?.[1];
        if (name) {
          names.push(name);
          return PARAM;
        }
        return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      })
      .join("");
    this.#routes.push({ method, pattern, regex: new RegExp(`^${source}$`), names, handler });
    return this;
  }

  /** Every route, in the order added (for the OpenAPI document and tests). */
  routes(): { method: Method; pattern: string }[] {
    return this.#routes.map(({ method, pattern }) => ({ method, pattern }));
  }

  /**
   * Finds the route for a request. `path` is the raw (still percent-encoded) path, so that an
   * encoded "/" inside a parameter stays inside it; parameters are decoded after matching.
   * A parameter that does not decode is a 400, naming the parameter.
   */
  match(method: string, path: string): Match<H> {
    const allow: Method[] = [];
    for (const r of this.#routes) {
      const m = r.regex.exec(path);
      if (!m) continue;
      if (r.method !== method && !(method === "HEAD" && r.method === "GET")) {
        allow.push(r.method);
        continue;
      }
      const params: Record<string, string> = {};
      r.names.forEach((name, i) => {
        const raw = m[i + 1] ?? "";
        try {
          params[name] = decodeURIComponent(raw);
        } catch {
          throw new HttpError(400, "invalid_argument", `path parameter ${name} is not valid percent-encoding`, { field: name });
        }
      });
      return { kind: "found", handler: r.handler, params, pattern: r.pattern };
    }
    return allow.length ? { kind: "method-not-allowed", allow: [...new Set(allow)] } : { kind: "not-found" };
  }
}
