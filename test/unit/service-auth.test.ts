/**
 * The scheduler's authenticators, offline: OIDC ID tokens are signed here with a key made for
 * the test and verified by google-auth-library against that key (the `certs` option), so no
 * call goes to Google.
 */
import { createSign, generateKeyPairSync, type KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ENV } from "../../src/config/env.js";
import { authenticatorFromEnv, bearerToken, oidcAuthenticator, SIGNATURE_REMOVED, tokenAuthenticator } from "../../src/service/auth.js";
import { HttpError } from "../../src/service/http-error.js";

const AUDIENCE = "https://shardrun-scheduler-abc-ew.a.run.app";
const INVOKER = "scheduler-invoker@my-project.iam.gserviceaccount.com";
const key = generateKeyPairSync("rsa", { modulusLength: 2048 });
const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
const CERTS = { k1: key.publicKey.export({ type: "spki", format: "pem" }).toString() };

function jwt(claims: Record<string, unknown>, o: { signer?: KeyObject; kid?: string; alg?: string } = {}): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const data = `${enc({ alg: o.alg ?? "RS256", kid: o.kid ?? "k1", typ: "JWT" })}.${enc(claims)}`;
  return `${data}.${createSign("RSA-SHA256").update(data).sign(o.signer ?? key.privateKey).toString("base64url")}`;
}

function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: "https://accounts.google.com", aud: AUDIENCE, sub: "1234567890", email: INVOKER, email_verified: true, iat: now - 10, exp: now + 3600, ...over };
}

async function failure(p: Promise<unknown>): Promise<HttpError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HttpError);
  return e as HttpError;
}

describe("bearerToken", () => {
  it("reads the token of a Bearer header, in any case of the scheme", () => {
    expect(bearerToken("Bearer abc.def")).toBe("abc.def");
    expect(bearerToken("bearer abc")).toBe("abc");
    expect(bearerToken(undefined)).toBeNull();
    expect(bearerToken("")).toBeNull();
  });

  it.each(["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token abc"])("refuses %j with a 401 that says what to send", (header) => {
    let e: unknown;
    try {
      bearerToken(header);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).status).toBe(401);
    expect((e as HttpError).message).toContain("Bearer");
  });
});

describe("tokenAuthenticator", () => {
  const auth = tokenAuthenticator({ token: "local-token-0123456789abcdef" });

  it("accepts the token", async () => {
    expect(await auth.authenticate({ authorization: "Bearer local-token-0123456789abcdef" })).toEqual({ kind: "token", subject: "local-token" });
  });

  it("answers 401 with a Bearer challenge when the token is missing, wrong, or a prefix of the right one", async () => {
    for (const authorization of [undefined, "Bearer wrong-token-0123456789abcdef", "Bearer local-token", "Bearer local-token-0123456789abcdef0"]) {
      const e = await failure(auth.authenticate({ authorization }));
      expect(e.status).toBe(401);
      expect(e.code).toBe("unauthenticated");
      expect(e.headers["WWW-Authenticate"]).toMatch(/^Bearer/);
    }
  });

  it("refuses a short token at construction, saying how to make one", () => {
    expect(() => tokenAuthenticator({ token: "short" })).toThrow(/at least 16 characters/);
  });
});

describe("oidcAuthenticator (Google-signed ID tokens)", () => {
  const auth = oidcAuthenticator({ audience: AUDIENCE, allowedEmails: [INVOKER, "Person@Example.com"], certs: CERTS });

  it("accepts a valid token from an allowed service account", async () => {
    expect(await auth.authenticate({ authorization: `Bearer ${jwt(claims())}` })).toEqual({ kind: "oidc", subject: INVOKER });
  });

  it("matches the allow-list without regard to case", async () => {
    expect((await auth.authenticate({ authorization: `Bearer ${jwt(claims({ email: "person@example.com" }))}` })).subject).toBe("person@example.com");
  });

  it("takes its keys from a function too (rotated keys)", async () => {
    const rotating = oidcAuthenticator({ audience: AUDIENCE, allowedEmails: [INVOKER], certs: async () => CERTS });
    expect((await rotating.authenticate({ authorization: `Bearer ${jwt(claims())}` })).kind).toBe("oidc");
  });

  const now = Math.floor(Date.now() / 1000);
  it.each([
    ["missing", undefined, /missing credentials/],
    ["not a JWT", "Bearer not-a-jwt", /malformed/],
    ["signed by another key under the same key id", `Bearer ${jwt(claims(), { signer: other.privateKey })}`, /signature/],
    ["signed with an unknown key id", `Bearer ${jwt(claims(), { kid: "k9" })}`, /signature/],
    ["with a payload swapped after signing", `Bearer ${swapPayload(jwt(claims()), claims({ email: "attacker@evil.example" }))}`, /signature/],
    ["expired an hour ago", `Bearer ${jwt(claims({ iat: now - 7200, exp: now - 3600 }))}`, /expired/],
    ["for another audience", `Bearer ${jwt(claims({ aud: "https://other-service.a.run.app" }))}`, /another audience/],
    ["from another issuer", `Bearer ${jwt(claims({ iss: "https://evil.example" }))}`, /not from Google/],
    ["without an expiry", `Bearer ${jwt(claims({ exp: undefined }))}`, /malformed/],
  ])("answers 401 to a token %s", async (_what, authorization, message) => {
    const e = await failure(auth.authenticate({ authorization }));
    expect(e.status).toBe(401);
    expect(e.message).toMatch(message);
    // google-auth-library's own messages embed the token: none of it may reach the client.
    expect(e.message).not.toMatch(/eyJ/);
  });

  it.each([
    ["an account not in the allow-list", claims({ email: "someone@my-project.iam.gserviceaccount.com" }), /may not call/],
    ["an unverified email", claims({ email_verified: false }), /no verified email/],
    ["no email at all", claims({ email: undefined, email_verified: undefined }), /no verified email/],
  ])("answers 403 to a valid token of %s", async (_what, c, message) => {
    const e = await failure(auth.authenticate({ authorization: `Bearer ${jwt(c)}` }));
    expect(e.status).toBe(403);
    expect(e.code).toBe("permission_denied");
    expect(e.message).toMatch(message);
  });

  it("refuses to be made without an audience or an allow-list", () => {
    expect(() => oidcAuthenticator({ audience: "", allowedEmails: [INVOKER] })).toThrow(/SHARDRUN_OIDC_AUDIENCE/);
    expect(() => oidcAuthenticator({ audience: AUDIENCE, allowedEmails: [" ", ""] })).toThrow(/SHARDRUN_ALLOWED_SERVICE_ACCOUNTS/);
  });
});

describe("oidcAuthenticator behind Cloud Run's invoker IAM check (signatures removed by Cloud Run)", () => {
  const strip = (token: string) => `${token.split(".").slice(0, 2).join(".")}.${SIGNATURE_REMOVED}`;
  const behind = oidcAuthenticator({ audience: AUDIENCE, allowedEmails: [INVOKER], certs: CERTS, behindInvokerCheck: true });
  const auth = oidcAuthenticator({ audience: AUDIENCE, allowedEmails: [INVOKER], certs: CERTS });

  it("accepts a stripped token on its claims, and still verifies a token that kept its signature", async () => {
    expect(await behind.authenticate({ authorization: `Bearer ${strip(jwt(claims()))}` })).toEqual({ kind: "oidc", subject: INVOKER });
    expect((await behind.authenticate({ authorization: `Bearer ${jwt(claims())}` })).subject).toBe(INVOKER);
    const forged = jwt(claims(), { signer: other.privateKey });
    expect((await failure(behind.authenticate({ authorization: `Bearer ${forged}` }))).message).toMatch(/signature/);
  });

  const now = Math.floor(Date.now() / 1000);
  it.each([
    ["expired", claims({ iat: now - 7200, exp: now - 3600 }), /expired/],
    ["for another audience", claims({ aud: "https://other-service.a.run.app" }), /another audience/],
    ["from another issuer", claims({ iss: "https://evil.example" }), /not from Google/],
    ["without an expiry", claims({ exp: undefined }), /malformed/],
    ["issued for a week", claims({ exp: now + 7 * 86400 }), /too long/],
  ])("still answers 401 to a stripped token %s", async (_what, c, message) => {
    const e = await failure(behind.authenticate({ authorization: `Bearer ${strip(jwt(c))}` }));
    expect(e.status).toBe(401);
    expect(e.message).toMatch(message);
  });

  it("still answers 403 to a stripped token of an account not in the allow-list, or with no verified email", async () => {
    for (const c of [claims({ email: "someone@my-project.iam.gserviceaccount.com" }), claims({ email_verified: false })]) {
      expect((await failure(behind.authenticate({ authorization: `Bearer ${strip(jwt(c))}` }))).status).toBe(403);
    }
  });

  it("answers 401 to a stripped token when no invoker check stands in front (anyone can strip a signature)", async () => {
    const e = await failure(auth.authenticate({ authorization: `Bearer ${strip(jwt(claims()))}` }));
    expect(e.status).toBe(401);
    expect(e.message).toMatch(/signature/);
  });
});

describe("authenticatorFromEnv", () => {
  it("reads SHARDRUN_INVOKER_IAM_CHECK as on or off, and refuses anything else by name", async () => {
    const env = (v?: string) => ({ [ENV.oidcAudience]: AUDIENCE, [ENV.allowedServiceAccounts]: INVOKER, ...(v === undefined ? {} : { [ENV.invokerIamCheck]: v }) });
    const token = `Bearer ${jwt(claims()).split(".").slice(0, 2).join(".")}.${SIGNATURE_REMOVED}`;
    for (const on of ["on", "true", "1"]) expect((await authenticatorFromEnv(env(on), undefined, { certs: CERTS })!.authenticate({ authorization: token })).subject).toBe(INVOKER);
    for (const off of [undefined, "off", "false", "0"]) expect((await failure(authenticatorFromEnv(env(off), undefined, { certs: CERTS })!.authenticate({ authorization: token }))).status).toBe(401);
    expect(() => authenticatorFromEnv(env("yes"))).toThrow(/SHARDRUN_INVOKER_IAM_CHECK.*"on" or "off"/);
  });

  it("prefers OIDC, then the token, else nothing", () => {
    expect(authenticatorFromEnv({ [ENV.oidcAudience]: AUDIENCE, [ENV.allowedServiceAccounts]: INVOKER, [ENV.apiToken]: "x".repeat(20) })?.kind).toBe("oidc");
    expect(authenticatorFromEnv({ [ENV.apiToken]: "x".repeat(20) })?.kind).toBe("token");
    expect(authenticatorFromEnv({})).toBeNull();
  });

  it("refuses an audience without anyone allowed", () => {
    expect(() => authenticatorFromEnv({ [ENV.oidcAudience]: AUDIENCE })).toThrow(/SHARDRUN_ALLOWED_SERVICE_ACCOUNTS/);
  });
});

function swapPayload(token: string, payload: Record<string, unknown>): string {
  const [h, , s] = token.split(".");
  return `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
}
