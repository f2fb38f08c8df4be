/**
 * Request bodies: JSON only, within a size limit, read before the route's zod schema looks at
 * them. Hono's bodyLimit enforces the size (Content-Length first, then the bytes as they come);
 * this adds what the API promises on top: 415 for a body that is not JSON (a form post from a
 * web page must not change state), 400 naming `body` for malformed JSON, an empty body read as
 * `{}`, and a client that hangs up mid-body told apart from a server fault.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ServiceEnv } from "./context.js";
import { ClientClosedRequest, HttpError } from "./http-error.js";

const JSON_TYPE = /^application\/json\s*(;|$)/i;

export function jsonBody(maxBytes: number): MiddlewareHandler<ServiceEnv> {
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new HttpError(413, "payload_too_large", `the body is larger than ${maxBytes} bytes`, { headers: { Connection: "close" } });
    },
  });
  return (c, next) =>
    limit(c, async () => {
      const type = c.req.header("content-type") ?? "";
      // Refused even when empty: only JSON clients may change state.
      if (type && !JSON_TYPE.test(type)) throw new HttpError(415, "unsupported_media_type", `expected Content-Type: application/json, got ${type.slice(0, 100)}`);
      let text: string;
      try {
        text = await c.req.text();
      } catch (e) {
        const incoming = c.env?.incoming;
        if (incoming?.destroyed || incoming?.readableAborted || c.req.raw.signal?.aborted) throw new ClientClosedRequest({ cause: e });
        throw e;
      }
      if (text.trim() === "") {
        // No body means no settings: the route's schema fills in its defaults from `{}`. Its
        // validator reads JSON only from a request that says it is JSON, hence the header.
        const headers = new Headers(c.req.raw.headers);
        headers.set("content-type", "application/json");
        c.req.raw = new Request(c.req.url, { method: c.req.method, headers, body: "{}" });
        c.req.bodyCache = {};
      } else {
        try {
          JSON.parse(text);
        } catch {
          throw new HttpError(400, "invalid_json", "the body is not valid JSON", { field: "body" });
        }
      }
      await next();
    });
}
