/**
 * Cloud Run's front end, for tests: an HTTP reverse proxy in front of the app that does what
 * Cloud Run does before a request reaches a service's container.
 *
 * With the invoker IAM check on (Cloud Run's default, and what manifests/service.yaml deploys)
 * it verifies the caller's Google ID token itself, against the test's signing keys: RS256
 * signature by a known key id, Google's issuer, an audience the service answers to (its URL or
 * a custom audience), not expired, and an email that holds roles/run.invoker. A request that
 * fails is refused here and never reaches the app: 403 without a token (an anonymous caller is
 * no invoker: "Your client does not have permission to get URL"), 401 when the token does not
 * verify, 403 when the caller is not an invoker. A request that passes is forwarded with the
 * token's signature replaced by the literal `SIGNATURE_REMOVED_BY_GOOGLE`, as Cloud Run does,
 * so the app can read the claims but cannot verify the signature again.
 *
 * With the check off (`--no-invoker-iam-check`, or allUsers holding the invoker role) every
 * request is forwarded with its Authorization header untouched.
 *
 * Written from Cloud Run's documentation, not from its code: which status each refusal gets is
 * settled by the live suite (test/live), and no test of the app depends on it beyond "refused,
 * not forwarded".
 */
import { createPublicKey, createVerify } from "node:crypto";
import http from "node:http";
import type net from "node:net";

/** What Cloud Run puts where the signature was. */
export const SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE";
const GOOGLE_ISSUERS = ["https://accounts.google.com", "accounts.google.com"];
/** Tolerance for clocks, as Google's token verifiers allow. */
const CLOCK_SKEW_S = 300;

export interface CloudRunFrontendOptions {
  /** The app's base URL, e.g. `http://127.0.0.1:PORT`. */
  target: string;
  /** False for a service deployed with `--no-invoker-iam-check` (or allUsers as invoker). */
  invokerIamCheck: boolean;
  /** Audiences the service accepts: its run.app URL and any custom audiences. */
  audiences: readonly string[];
  /** Emails that hold roles/run.invoker on the service. */
  invokers: readonly string[];
  /** Google's signing keys, as key id → PEM (certificate or public key). */
  certs: Record<string, string>;
}

export interface FrontendEvent {
  method: string;
  path: string;
  /** Status the front end answered itself; undefined when the request was forwarded. */
  refused?: number;
  /** Why it refused, in the words of this fake. */
  reason?: string;
  /** The Authorization header the app received, when forwarded. */
  forwardedAuthorization?: string;
}

export class CloudRunFrontend {
  readonly url: string;
  readonly events: FrontendEvent[] = [];
  readonly #server: http.Server;
  readonly #target: URL;
  readonly #o: CloudRunFrontendOptions;
  readonly #invokers: Set<string>;

  private constructor(server: http.Server, o: CloudRunFrontendOptions) {
    this.#server = server;
    this.#o = o;
    this.#target = new URL(o.target);
    this.#invokers = new Set(o.invokers.map((e) => e.toLowerCase()));
    this.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  }

  static async start(o: CloudRunFrontendOptions): Promise<CloudRunFrontend> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const frontend = new CloudRunFrontend(server, o);
    // A client that hangs up mid-body just ends its request.
    server.on("request", (req, res) => void frontend.#handle(req, res).catch(() => res.destroy()));
    return frontend;
  }

  /** Requests the front end refused itself. */
  refused(): FrontendEvent[] {
    return this.events.filter((e) => e.refused !== undefined);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const event: FrontendEvent = { method: req.method ?? "GET", path: (req.url ?? "/").split("?")[0]! };
    this.events.push(event);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = { ...req.headers };
    if (this.#o.invokerIamCheck) {
      const verdict = this.#check(req.headers.authorization);
      if (verdict.status !== 200) {
        event.refused = verdict.status;
        event.reason = verdict.reason;
        const title = verdict.status === 401 ? "401 Unauthorized" : "403 Forbidden";
        const body = `<html><head><title>${title}</title></head><body><h1>Error: ${title.slice(4)}</h1><h2>Your client does not have permission to get URL <code>${event.path}</code> from this server.</h2></body></html>`;
        res.writeHead(verdict.status, { "content-type": "text/html; charset=UTF-8", ...(verdict.status === 401 ? { "www-authenticate": 'Bearer error="invalid_token"' } : {}) }).end(body);
        return;
      }
      headers.authorization = verdict.forwarded;
    }
    event.forwardedAuthorization = headers.authorization;
    try {
      const upstream = await this.#forward(req, headers, Buffer.concat(chunks));
      res.writeHead(upstream.status, upstream.headers).end(upstream.body);
    } catch (error) {
      if (!res.headersSent) res.writeHead(503).end(`upstream: ${String(error)}`);
    }
  }

  /** The invoker IAM check: 200 with the header to forward, or the refusal. */
  #check(authorization: string | undefined): { status: 200; forwarded: string } | { status: 401 | 403; reason: string } {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) return { status: 403, reason: "no bearer token: an anonymous caller" };
    const parts = m[1]!.split(".");
    if (parts.length !== 3) return { status: 401, reason: "not a JWT" };
    const [h, p, s] = parts as [string, string, string];
    let header: { alg?: unknown; kid?: unknown };
    let claims: { iss?: unknown; aud?: unknown; exp?: unknown; iat?: unknown; email?: unknown; email_verified?: unknown };
    try {
      header = JSON.parse(Buffer.from(h, "base64url").toString("utf8")) as typeof header;
      claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as typeof claims;
    } catch {
      return { status: 401, reason: "not a JWT" };
    }
    const pem = typeof header.kid === "string" ? this.#o.certs[header.kid] : undefined;
    if (header.alg !== "RS256" || !pem) return { status: 401, reason: "unknown signing key" };
    const verifier = createVerify("RSA-SHA256").update(`${h}.${p}`);
    if (!verifier.verify(createPublicKey(pem), Buffer.from(s, "base64url"))) return { status: 401, reason: "bad signature" };
    if (typeof claims.iss !== "string" || !GOOGLE_ISSUERS.includes(claims.iss)) return { status: 401, reason: "not issued by Google" };
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.some((a) => typeof a === "string" && this.#o.audiences.includes(a))) return { status: 401, reason: "wrong audience" };
    const now = Date.now() / 1000;
    if (typeof claims.exp !== "number" || claims.exp + CLOCK_SKEW_S < now) return { status: 401, reason: "expired" };
    if (typeof claims.iat === "number" && claims.iat - CLOCK_SKEW_S > now) return { status: 401, reason: "issued in the future" };
    if (typeof claims.email !== "string" || !this.#invokers.has(claims.email.toLowerCase())) return { status: 403, reason: "not an invoker" };
    return { status: 200, forwarded: `Bearer ${h}.${p}.${SIGNATURE_REMOVED}` };
  }

  #forward(req: http.IncomingMessage, headers: http.IncomingHttpHeaders, body: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const out = { ...headers, host: this.#target.host, "content-length": String(body.length) };
      delete out["transfer-encoding"];
      const upstream = http.request({ host: this.#target.hostname, port: this.#target.port, method: req.method, path: req.url, headers: out }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const h = { ...response.headers };
          delete h["transfer-encoding"];
          delete h["connection"];
          const data = Buffer.concat(chunks);
          resolve({ status: response.statusCode ?? 502, headers: { ...h, "content-length": String(data.length) }, body: data });
        });
      });
      upstream.on("error", reject);
      upstream.end(body);
    });
  }
}
