/**
 * Who may call the scheduler service. On Cloud Run every call carries a Google-signed OIDC ID
 * token (Cloud Scheduler adds one; people get one from `gcloud auth print-identity-token` or
 * `gcloud run services proxy`): it must be Google's, for this service's audience, unexpired, and
 * from an allowed account. Locally a shared bearer token stands in. A failed check is a 401 (who
 * are you?) or a 403 (not you), thrown before any handler runs, so it changes nothing.
 *
 * Behind Cloud Run's invoker IAM check (manifests/service.yaml) Cloud Run has verified the token
 * before the request arrives, and forwards it with its signature replaced by the literal
 * `SIGNATURE_REMOVED_BY_GOOGLE`: the signature cannot be verified again, and the claims are
 * checked on their own. Without that check in front, such a token is refused like any forgery.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { OAuth2Client } from "google-auth-library";
import { ENV } from "../config/env.js";
import { errorMessage } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { silentLogger } from "../core/log.js";
import { HttpError } from "./http-error.js";

/** The verified caller, for logs. */
export interface Principal {
  kind: "token" | "oidc" | "open";
  /** An email for OIDC callers; "local-token" or "anonymous" otherwise. */
  subject: string;
}

/** What an authenticator looks at: the Authorization header (pages put `?token=` there). */
export interface AuthRequest {
  authorization?: string | undefined;
}

export interface Authenticator {
  readonly kind: Principal["kind"];
  /** The caller, or an `HttpError` 401/403. Never has side effects. */
  authenticate(request: AuthRequest): Promise<Principal>;
}

const challenge = { "WWW-Authenticate": 'Bearer realm="shardrun"' };
const unauthenticated = (message: string) => new HttpError(401, "unauthenticated", message, { field: "Authorization", headers: challenge });

/** The token of `Authorization: Bearer <token>`, or null when there is no such header. */
export function bearerToken(authorization: string | undefined): string | null {
  if (authorization === undefined || authorization === "") return null;
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization);
  if (!m) throw unauthenticated('expected "Authorization: Bearer <token>"');
  return m[1]!;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

export interface TokenAuthOptions {
  /**
   * The shared token (SHARDRUN_API_TOKEN); at least 16 characters.
   * @example "3f0c…" (from `openssl rand -hex 24`)
   */
  token: string;
}

/** Local mode: one shared bearer token, compared in constant time. */
export function tokenAuthenticator(options: TokenAuthOptions): Authenticator {
  if (typeof options.token !== "string" || options.token.length < 16) {
    throw new TypeError("Expected `token` to be a string of at least 16 characters (set SHARDRUN_API_TOKEN, e.g. to `openssl rand -hex 24`)");
  }
  // Hashing first gives equal lengths, so timingSafeEqual leaks neither content nor length.
  const expected = digest(options.token);
  return {
    kind: "token",
    async authenticate(request) {
      const token = bearerToken(request.authorization);
      if (token === null) throw unauthenticated("missing credentials: send Authorization: Bearer <SHARDRUN_API_TOKEN>");
      if (!timingSafeEqual(digest(token), expected)) throw unauthenticated("the token is not valid");
      return { kind: "token", subject: "local-token" };
    },
  };
}

/**
 * No check at all. Not used by `shardrun serve` (which makes a token rather than run open);
 * for embedding the service behind a proxy that authenticates, such as IAP.
 */
export function openAuthenticator(): Authenticator {
  return { kind: "open", authenticate: async () => ({ kind: "open", subject: "anonymous" }) };
}

export interface OidcAuthOptions {
  /**
   * The audience the tokens must be issued for: the service's URL, as Cloud Scheduler's
   * `oidcToken.audience` names it (SHARDRUN_OIDC_AUDIENCE).
   * @example "https://shardrun-scheduler-abc123-ew.a.run.app"
   */
  audience: string | string[];
  /**
   * Emails allowed to call (the `email` claim, which must be verified): service accounts such as
   * Cloud Scheduler's invoker, or people's accounts (SHARDRUN_ALLOWED_SERVICE_ACCOUNTS).
   * @example ["scheduler-invoker@my-project.iam.gserviceaccount.com"]
   */
  allowedEmails: readonly string[];
  /**
   * Signing keys by key id (PEM certificates or public keys). Tests give their own keys here;
   * without it Google's published certificates are fetched (and cached) by google-auth-library.
   */
  certs?: Record<string, string> | (() => Promise<Record<string, string>>);
  /** @default ["https://accounts.google.com", "accounts.google.com"] */
  issuers?: string[];
  /**
   * True when Cloud Run's invoker IAM check stands in front of the service (the service is
   * deployed without `--no-invoker-iam-check`; SHARDRUN_INVOKER_IAM_CHECK=on). Cloud Run then
   * refuses every request whose token does not verify or whose caller lacks roles/run.invoker,
   * and forwards the rest with the signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`: such a
   * token is accepted on its claims (issuer, audience, expiry, allow-listed email). A token
   * that still has its signature is verified as usual. Set it only when the check is really on:
   * without it anyone can write a token with a stripped signature.
   * @default false
   */
  behindInvokerCheck?: boolean;
  /** @default Date.now */
  now?: () => number;
  /** @default silentLogger */
  logger?: Logger;
}

/** What Cloud Run puts in place of an ID token's signature once its invoker IAM check passed it. */
export const SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE";
/** As google-auth-library allows: clock skew, and the longest life of a Google ID token. */
const CLOCK_SKEW_S = 300;
const MAX_TOKEN_LIFETIME_S = 86_400;

type IdTokenClaims = { iss?: unknown; aud?: unknown; exp?: unknown; iat?: unknown; email?: string; email_verified?: boolean; sub?: string };

/**
 * The claims of a token Cloud Run has verified and stripped of its signature, checked as
 * google-auth-library checks a signed one (same reasons on failure); throws the reason.
 */
function strippedTokenClaims(token: string, audiences: readonly string[], issuers: readonly string[], nowMs: number): IdTokenClaims {
  const [header, body] = token.split(".");
  let claims: IdTokenClaims;
  try {
    const h = JSON.parse(Buffer.from(header ?? "", "base64url").toString("utf8")) as { alg?: unknown };
    claims = JSON.parse(Buffer.from(body ?? "", "base64url").toString("utf8")) as IdTokenClaims;
    if (typeof h !== "object" || h === null || typeof claims !== "object" || claims === null) throw new Error("not an object");
  } catch {
    throw new Error("the token is malformed");
  }
  const now = nowMs / 1000;
  if (typeof claims.iat !== "number" || typeof claims.exp !== "number") throw new Error("the token is malformed");
  if (claims.exp - claims.iat > MAX_TOKEN_LIFETIME_S) throw new Error("the token lives too long");
  if (now < claims.iat - CLOCK_SKEW_S) throw new Error("the token is not valid yet");
  if (now > claims.exp + CLOCK_SKEW_S) throw new Error("the token has expired");
  if (typeof claims.iss !== "string" || !issuers.includes(claims.iss)) throw new Error("the token is not from Google");
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.some((a) => typeof a === "string" && audiences.includes(a))) throw new Error("the token is for another audience");
  return claims;
}

/** Reasons a token did not verify, from google-auth-library's messages (which embed the token). */
function rejection(message: string): string {
  if (message.startsWith("Wrong recipient")) return "the token is for another audience";
  if (message.startsWith("Token used too late")) return "the token has expired";
  if (message.startsWith("Token used too early")) return "the token is not valid yet";
  if (message.startsWith("Invalid token signature") || message.startsWith("No pem found")) return "the token's signature does not verify";
  if (message.startsWith("Invalid issuer")) return "the token is not from Google";
  if (message.startsWith("Expiration time too far")) return "the token lives too long";
  return "the token is malformed";
}

/** Cloud mode: Google-signed OIDC ID tokens for one audience, from an allow-list of emails. */
export function oidcAuthenticator(options: OidcAuthOptions): Authenticator {
  const audiences = (Array.isArray(options.audience) ? options.audience : [options.audience]).filter(Boolean);
  if (!audiences.length) throw new TypeError("Expected `audience` to be the service URL (set SHARDRUN_OIDC_AUDIENCE)");
  const allowed = new Set(options.allowedEmails.map((e) => e.trim().toLowerCase()).filter(Boolean));
  if (!allowed.size) throw new TypeError("Expected `allowedEmails` to list at least one account (set SHARDRUN_ALLOWED_SERVICE_ACCOUNTS)");
  const issuers = options.issuers ?? ["https://accounts.google.com", "accounts.google.com"];
  const logger = options.logger ?? silentLogger;
  const behindInvokerCheck = options.behindInvokerCheck === true;
  const now = options.now ?? Date.now;
  let client: Promise<OAuth2Client> | undefined;
  // Loaded on first use: local mode never pays for google-auth-library.
  const getClient = () => (client ??= import("google-auth-library").then(({ OAuth2Client }) => new OAuth2Client({ issuers })));
  const audience = audiences.length === 1 ? audiences[0]! : audiences;

  /** The claims of a token whose signature verifies against Google's keys (or the given ones). */
  async function verifiedClaims(token: string): Promise<IdTokenClaims | undefined> {
    const c = await getClient();
    try {
      const ticket = options.certs
        ? await c.verifySignedJwtWithCertsAsync(token, typeof options.certs === "function" ? await options.certs() : options.certs, audience, issuers)
        : await c.verifyIdToken({ idToken: token, audience });
      return ticket.getPayload();
    } catch (e) {
      const reason = rejection(errorMessage(e));
      logger.warn("rejected an ID token", { reason });
      throw unauthenticated(reason);
    }
  }

  return {
    kind: "oidc",
    async authenticate(request) {
      const token = bearerToken(request.authorization);
      if (token === null) throw unauthenticated("missing credentials: send Authorization: Bearer <Google-signed OIDC ID token>");
      let payload: IdTokenClaims | undefined;
      if (behindInvokerCheck && token.endsWith(`.${SIGNATURE_REMOVED}`)) {
        try {
          payload = strippedTokenClaims(token, audiences, issuers, now());
        } catch (e) {
          const reason = errorMessage(e);
          logger.warn("rejected an ID token", { reason, signature: "removed by Cloud Run" });
          throw unauthenticated(reason);
        }
      } else {
        payload = await verifiedClaims(token);
      }
      const email = payload?.email?.toLowerCase();
      if (!email || payload?.email_verified !== true) {
        throw new HttpError(403, "permission_denied", "the token carries no verified email (mint it with the email claim, as Cloud Scheduler does)");
      }
      if (!allowed.has(email)) {
        logger.warn("refused a caller not in the allow-list", { email });
        throw new HttpError(403, "permission_denied", `${email} may not call this service`);
      }
      return { kind: "oidc", subject: email };
    },
  };
}

/**
 * The authenticator the environment asks for: OIDC when SHARDRUN_OIDC_AUDIENCE is set, else the
 * local token when SHARDRUN_API_TOKEN is; null when neither (the caller decides what that means).
 * `oidc.certs` replaces Google's published keys (tests sign their own tokens).
 */
export function authenticatorFromEnv(env: NodeJS.ProcessEnv = process.env, logger?: Logger, oidc: Pick<OidcAuthOptions, "certs"> = {}): Authenticator | null {
  const audience = env[ENV.oidcAudience];
  if (audience) {
    return oidcAuthenticator({
      audience: audience.split(",").map((a) => a.trim()),
      allowedEmails: (env[ENV.allowedServiceAccounts] ?? "").split(","),
      behindInvokerCheck: invokerIamCheck(env[ENV.invokerIamCheck]),
      ...(logger ? { logger } : {}),
      ...oidc,
    });
  }
  const token = env[ENV.apiToken];
  return token ? tokenAuthenticator({ token }) : null;
}

/** SHARDRUN_INVOKER_IAM_CHECK: on/off (true/false, 1/0); unset is off. */
function invokerIamCheck(value: string | undefined): boolean {
  const v = (value ?? "").trim().toLowerCase();
  if (v === "" || v === "off" || v === "false" || v === "0") return false;
  if (v === "on" || v === "true" || v === "1") return true;
  throw new TypeError(`Expected ${ENV.invokerIamCheck} to be "on" or "off", got "${value}"`);
}
