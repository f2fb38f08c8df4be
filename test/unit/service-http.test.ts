/**
 * The scheduler service's HTTP contract, in this process on port 0 with a folder store: the open
 * endpoints, every kind of bad input (bad bodies, ids, queries, methods, sizes, media types) and
 * every auth failure, each of which must answer with a clear error and change nothing. Nothing
 * here launches: the launcher throws if asked. Whole runs through the API are in
 * test/e2e/api.test.ts.
 *
 * OIDC tokens are signed here with a key made for the test; the service verifies them with
 * google-auth-library against that key, so nothing goes to Google.
 */
import { createSign, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Launcher } from "../../src/launcher/port.js";
import { oidcAuthenticator, tokenAuthenticator } from "../../src/service/auth.js";
import { serviceHarness, type Started } from "../support/service-harness.js";

const ROOT = resolve(import.meta.dirname, "../..");
const TOKEN = "api-unit-token-0123456789abcdef";
const SLEEPY = `/v1/jobs/${encodeURIComponent("test/fixtures/jobs/sleepy.ts")}/runs`;
const AUDIENCE = "https://shardrun-scheduler-test.a.run.app";
const INVOKER = "scheduler-invoker@test-project.iam.gserviceaccount.com";



/** Bad requests must never get as far as the launcher. */
const launcher: Launcher = {
  kind: "local",
  launch: async () => {
    throw new Error("no launch expected in the HTTP contract tests");
  },
  getExecution: async () => null,
  cancel: async () => {
    throw new Error("no cancel expected in the HTTP contract tests");
  },
};

let storeDir: string;
let main: Started;
let oidc: Started;
let strict: Started;
const harness = serviceHarness({ token: TOKEN, storeDir: () => storeDir, launcher: () => launcher, main: () => main });
const { logs, started, start, api } = harness;
const unchanged = (fn: () => Promise<void>) => harness.unchanged(fn);

/** A request whose path goes out exactly as written. */
function rawRequest(method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // Options, not a URL string: a URL would resolve the dot segments before sending.
    const { port } = main.server.address() as AddressInfo;
    const req = request({ host: "127.0.0.1", port, path, method, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}


const key = generateKeyPairSync("rsa", { modulusLength: 2048 });
const forger = generateKeyPairSync("rsa", { modulusLength: 2048 });
function idToken(over: Record<string, unknown> = {}, signer = key.privateKey): string {
  const now = Math.floor(Date.now() / 1000);
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const claims = { iss: "https://accounts.google.com", aud: AUDIENCE, sub: "42", email: INVOKER, email_verified: true, iat: now - 5, exp: now + 3600, ...over };
  const data = `${enc({ alg: "RS256", kid: "test-key", typ: "JWT" })}.${enc(claims)}`;
  return `${data}.${createSign("RSA-SHA256").update(data).sign(signer).toString("base64url")}`;
}


beforeAll(async () => {
  if (!existsSync(join(ROOT, "dist/test/fixtures/jobs/sleepy.js"))) throw new Error("dist/ is not built: run `npx tsc -p tsconfig.build.json` first");
  storeDir = join(mkdtempSync(join(tmpdir(), "shardrun-http-")), "store");
  main = await start(tokenAuthenticator({ token: TOKEN }), { allowJobPaths: true, root: ROOT });
  oidc = await start(oidcAuthenticator({ audience: AUDIENCE, allowedEmails: [INVOKER], certs: { "test-key": key.publicKey.export({ type: "spki", format: "pem" }).toString() } }), { allowJobPaths: true });
  strict = await start(tokenAuthenticator({ token: TOKEN }));
});

afterAll(async () => {
  await harness.stopAll();
});

describe("open endpoints", () => {
  it("GET /healthz needs no credentials", async () => {
    const r = await api("GET", "/healthz", { token: null });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: "ok" });
  });

  it("GET /openapi.json is OpenAPI 3.1 from the zod schemas, with every endpoint", async () => {
    const r = await api("GET", "/openapi.json", { token: null });
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe("3.1.0");
    for (const path of ["/v1/jobs/{job}/runs", "/v1/runs", "/v1/runs/{id}", "/v1/runs/{id}:rerun", "/v1/runs/{id}:cancel", "/v1/runs/{id}/dead-letter", "/v1/schedules/{name}:fire", "/v1/reconcile", "/healthz"]) {
      expect(r.body.paths).toHaveProperty([path]);
    }
    expect(r.body.components.schemas.StartRunRequest.properties.budgets).toBeDefined();
  });
});

describe("errors of the HTTP layer", () => {
  it("404 for an unknown endpoint, 405 with Allow for a wrong method, as JSON error bodies", async () => {
    const nf = await api("GET", "/v2/nothing");
    expect(nf.status).toBe(404);
    expect(nf.body.error.code).toBe("not_found");
    const na = await api("DELETE", "/v1/runs");
    expect(na.status).toBe(405);
    expect(na.headers.get("allow")).toBe("GET");
    const get = await api("GET", "/v1/reconcile");
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
  });

  it("413 for a body over the limit, 415 for a body that is not JSON, 400 for malformed JSON; nothing written", async () => {
    await unchanged(async () => {
      const big = await api("POST", SLEEPY, { raw: JSON.stringify({ args: { pad: "x".repeat(2 << 20) } }), headers: { "content-type": "application/json" } });
      expect(big.status).toBe(413);
      expect(big.body.error.code).toBe("payload_too_large");
      const form = await api("POST", SLEEPY, { raw: "tasks=2", headers: { "content-type": "application/x-www-form-urlencoded" } });
      expect(form.status).toBe(415);
      const bad = await api("POST", SLEEPY, { raw: "{tasks: 2", headers: { "content-type": "application/json" } });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ code: "invalid_json", field: "body" });
    });
  });

  it.each([
    [{ tasks: "two" }, "tasks"],
    [{ tasks: 0 }, "tasks"],
    [{ bogus: true }, "bogus"],
    [{ shards: 2, itemsPerShard: 5 }, "itemsPerShard"],
    [{ budgets: { tokens: -1 } }, "budgets.tokens"],
    [{ maxFailedItems: "many" }, "maxFailedItems"],
    [{ args: { count: "lots" } }, "args.count"],
    [{ args: { sleepMs: -1 } }, "args.sleepMs"],
    [[1, 2], ""],
  ])("400 naming the field for the start body %j, nothing written", async (body, field) => {
    await unchanged(async () => {
      const r = await api("POST", SLEEPY, { body });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe("invalid_argument");
      if (field) expect(r.body.error.field).toBe(field);
      expect(JSON.stringify(r.body)).not.toMatch(/\n\s+at /);
    });
  });

  it("404 for an unknown job; 400 for a job path where only names are allowed", async () => {
    await unchanged(async () => {
      const r = await api("POST", "/v1/jobs/no-such-job/runs", { body: {} });
      expect(r.status).toBe(404);
      expect(r.body.error).toMatchObject({ code: "not_found", field: "job" });
      const path = await api("POST", SLEEPY, { body: {}, on: strict });
      expect(path.status).toBe(400);
      expect(path.body.error.field).toBe("job");
      const traversal = await api("POST", `/v1/jobs/${encodeURIComponent("../../etc/passwd")}/runs`, { body: {}, on: strict });
      expect(traversal.status).toBe(400);
    });
  });

  it.each([
    ["GET", "/v1/runs/..%2F..%2Fetc", 400],
    ["GET", "/v1/runs/a/b", 404],
    ["GET", "/v1/runs/not-a-run-id", 400],
    ["GET", "/v1/runs/%E0%A4%A", 400],
    ["GET", "/v1/runs/20991231-000000-sleepy-0000", 404],
    ["GET", "/v1/runs/..%2F..%2Fetc/dead-letter", 400],
    ["POST", "/v1/runs/..%2F..%2Fetc:cancel", 400],
    ["POST", "/v1/runs/20991231-000000-sleepy-0000:rerun", 404],
    ["GET", "/runs/..%2F..%2Fetc", 400],
  ])("%s %s is a %i, and changes nothing", async (method, path, status) => {
    await unchanged(async () => {
      const r = await api(method, path, method === "POST" ? { body: {} } : {});
      expect(r.status).toBe(status);
      expect(r.body.error.code).toBeTypeOf("string");
      if (status === 400 && path.includes("runs/")) expect(r.body.error.field).toBe("id");
    });
  });

  it("ids with dot segments sent as they are (fetch would resolve them) are a 400 or a 404", async () => {
    await unchanged(async () => {
      for (const [path, status] of [
        ["/v1/runs/..", 400],
        ["/v1/runs/%2e%2e%2f%2e%2e%2fetc", 400],
        ["/v1/runs/../../etc/passwd", 404],
        ["/v1/runs/./20991231-000000-sleepy-0000", 404],
      ] as const) {
        const r = await rawRequest("GET", path);
        expect(r.status, path).toBe(status);
        expect(JSON.parse(r.body).error.code).toBeTypeOf("string");
      }
    });
  });

  it("400 for bad list queries, naming the parameter", async () => {
    for (const [query, field] of [
      ["pageSize=0", "pageSize"],
      ["state=sleeping", "state"],
      ["since=yesterday", "since"],
      ["job=Bad_Name", "job"],
      ["pageToken=forged", "pageToken"],
      ["limit=5", "limit"],
      ["job=a&job=b", "job"],
    ] as const) {
      const r = await api("GET", `/v1/runs?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.error.field, query).toBe(field);
    }
  });
});

describe("hang-ups and headers", () => {
  it("a client that hangs up mid-body is one INFO line, no ERROR and no stack", async () => {
    logs.length = 0;
    const { port } = main.server.address() as AddressInfo;
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(
      [`POST ${SLEEPY} HTTP/1.1`, "Host: 127.0.0.1", `Authorization: Bearer ${TOKEN}`, "Content-Type: application/json", "Content-Length: 1000", "", '{"args": {"cou'].join("\r\n"),
    );
    await new Promise((r) => setTimeout(r, 100));
    socket.destroy();
    await expect.poll(() => logs.some((l) => JSON.parse(l).httpRequest?.status === 499), { timeout: 5000 }).toBe(true);
    await main.service.drain();
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.severity === "ERROR")).toEqual([]);
    expect(logs.join("")).not.toContain("stack");
    const gone = lines.filter((l) => (l.httpRequest as { status?: number } | undefined)?.status === 499);
    expect(gone).toHaveLength(1);
    expect(["INFO", "WARNING"]).toContain(gone[0]!.severity);
    expect(String(gone[0]!.message)).toContain("client closed");
  });

  it("dashboard pages may not be framed; every answer is no-store and nosniff", async () => {
    const page = await api("GET", "/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    const run = await api("GET", "/runs/20991231-000000-sleepy-0000");
    expect(run.status).toBe(404);
    expect(run.headers.get("x-frame-options")).toBe("DENY");
    for (const r of [page, await api("GET", "/v1/runs"), await api("GET", "/nothing")]) {
      expect(r.headers.get("cache-control")).toBe("no-store");
      expect(r.headers.get("x-content-type-options")).toBe("nosniff");
      expect(r.headers.get("referrer-policy")).toBe("no-referrer");
    }
  });
});

describe("auth failures change nothing", () => {
  const endpoints: [string, string, unknown?][] = [
    ["GET", "/v1/runs"],
    ["POST", SLEEPY, { args: { count: 5 } }],
    ["GET", "/v1/runs/20991231-000000-sleepy-0000"],
    ["POST", "/v1/runs/20991231-000000-sleepy-0000:rerun", {}],
    ["POST", "/v1/runs/20991231-000000-sleepy-0000:cancel", {}],
    ["GET", "/v1/runs/20991231-000000-sleepy-0000/dead-letter"],
    ["POST", "/v1/schedules/every-minute-tick:fire"],
    ["POST", "/v1/reconcile", {}],
    ["GET", "/"],
    ["GET", "/runs/20991231-000000-sleepy-0000"],
  ];

  it.each([
    ["no credentials", null],
    ["a wrong token", "wrong-token-0123456789abcdef"],
    ["a Basic header", "Basic"],
  ])("local token mode: %s is a 401 on every endpoint", async (_what, token) => {
    await unchanged(async () => {
      for (const [method, path, body] of endpoints) {
        const headers: Record<string, string> = token === "Basic" ? { authorization: "Basic dXNlcjpwYXNz" } : {};
        const r = await api(method, path, { token: token === "Basic" ? null : token, headers, ...(body !== undefined ? { body } : {}) });
        expect(r.status, `${method} ${path}`).toBe(401);
        expect(r.body.error.code).toBe("unauthenticated");
        expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
      }
    });
  });

  const now = Math.floor(Date.now() / 1000);
  it.each([
    ["missing", null, 401],
    ["with a forged signature", idToken({}, forger.privateKey), 401],
    ["expired", idToken({ iat: now - 7200, exp: now - 3600 }), 401],
    ["for the wrong audience", idToken({ aud: "https://someone-else.a.run.app" }), 401],
    ["from an account not in the allow-list", idToken({ email: "intruder@test-project.iam.gserviceaccount.com" }), 403],
    ["with an unverified email", idToken({ email_verified: false }), 403],
  ])("OIDC mode: a token %s is a %s on every endpoint", async (_what, token, status) => {
    await unchanged(async () => {
      for (const [method, path, body] of endpoints) {
        const r = await api(method, path, { token, on: oidc, ...(body !== undefined ? { body } : {}) });
        expect(r.status, `${method} ${path}`).toBe(status);
        expect(r.body.error.code).toBe(status === 401 ? "unauthenticated" : "permission_denied");
      }
    });
  });

  it("OIDC mode: a valid token from an allowed service account gets through", async () => {
    const r = await api("GET", "/v1/runs?pageSize=1", { token: idToken(), on: oidc });
    expect(r.status).toBe(200);
    expect(r.body.runs).toBeInstanceOf(Array);
  });

  it("dashboard pages take the token as ?token=, and the log never shows it", async () => {
    logs.length = 0;
    const denied = await api("GET", "/?token=wrong-token-0123456789abcdef", { token: null });
    expect(denied.status).toBe(401);
    const page = await api("GET", `/?token=${TOKEN}`, { token: null });
    expect(page.status === 200 || page.status === 501).toBe(true);
    const json = await api("GET", `/v1/runs?token=${TOKEN}`, { token: null });
    expect(json.status).toBe(401); // the API itself takes the header only
    expect(logs.join("")).not.toContain(TOKEN);
  });
});
