/**
 * The scheduler service behind Cloud Run's front end (test/fakes/cloud-run-frontend.ts), in
 * both ways the manifests deploy it:
 * - invoker IAM check on (manifests/service.yaml as it is): Cloud Run verifies the ID token and
 *   forwards it with the signature replaced by SIGNATURE_REMOVED_BY_GOOGLE; the app checks the
 *   claims (audience, expiry, allow-listed email) and trusts the stripped signature;
 * - invoker IAM check off (`--no-invoker-iam-check`, SHARDRUN_INVOKER_IAM_CHECK=off): Cloud Run
 *   forwards the token untouched; the app verifies the signature itself and refuses a stripped
 *   one, which anyone can write.
 * Tokens are signed with a key made here; the front end and the app both know it as Google's.
 */
import { createSign, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ENV } from "../../src/config/env.js";
import { LocalLauncher } from "../../src/launcher/local.js";
import { authenticatorFromEnv } from "../../src/service/auth.js";
import { CloudRunFrontend, SIGNATURE_REMOVED } from "../fakes/cloud-run-frontend.js";
import { readServiceManifest } from "../support/manifests.js";
import { serviceHarness, type Started } from "../support/service-harness.js";

const SERVICE_URL = "https://shardrun-scheduler-abc123-ew.a.run.app";
const PROJECT = "my-project";
const key = generateKeyPairSync("rsa", { modulusLength: 2048 });
const attacker = generateKeyPairSync("rsa", { modulusLength: 2048 });
const CERTS = { k1: key.publicKey.export({ type: "spki", format: "pem" }).toString() };

function jwt(claims: Record<string, unknown>, signer: KeyObject = key.privateKey): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const data = `${enc({ alg: "RS256", kid: "k1", typ: "JWT" })}.${enc(claims)}`;
  return `${data}.${createSign("RSA-SHA256").update(data).sign(signer).toString("base64url")}`;
}
const stripped = (token: string) => `${token.split(".").slice(0, 2).join(".")}.${SIGNATURE_REMOVED}`;
function claims(email: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: "https://accounts.google.com", aud: SERVICE_URL, sub: "1234567890", email, email_verified: true, iat: now - 10, exp: now + 3600, ...over };
}

/** The manifest's env for this project and service URL (its placeholders filled in). */
function deployedEnv(over: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(readServiceManifest().env)) {
    env[k] = v.replace(/PROJECT_ID/g, PROJECT).replace(/https:\/\/shardrun-scheduler-HASH-REGION\.a\.run\.app/, SERVICE_URL);
  }
  return { ...env, ...over };
}
const SCHEDULER_SA = deployedEnv()[ENV.allowedServiceAccounts]!;
/** Holds roles/run.invoker (so the front end lets it through) but is not in the app's allow-list. */
const OTHER_INVOKER = `someone-else@${PROJECT}.iam.gserviceaccount.com`;

describe("Cloud Run's front end (fake)", () => {
  let echo: http.Server;
  let seen: (string | undefined)[];
  let target: string;
  beforeAll(async () => {
    echo = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    target = `http://127.0.0.1:${(echo.address() as net.AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => echo.close(() => resolve())));

  const start = (invokerIamCheck: boolean) => CloudRunFrontend.start({ target, invokerIamCheck, audiences: [SERVICE_URL], invokers: [SCHEDULER_SA], certs: CERTS });
  const call = (f: CloudRunFrontend, authorization?: string) => fetch(`${f.url}/v1/runs`, { headers: authorization ? { authorization } : {} });

  it("with the invoker check on, forwards an invoker's token with its signature replaced", async () => {
    const f = await start(true);
    seen = [];
    const token = jwt(claims(SCHEDULER_SA));
    expect((await call(f, `Bearer ${token}`)).status).toBe(200);
    expect(seen).toEqual([`Bearer ${stripped(token)}`]);
    await f.close();
  });

  it.each([
    ["no token", undefined, 403],
    ["a token signed by another key", `Bearer ${jwt(claims(SCHEDULER_SA), attacker.privateKey)}`, 401],
    ["a token with its signature already stripped", `Bearer ${stripped(jwt(claims(SCHEDULER_SA)))}`, 401],
    ["an expired token", `Bearer ${jwt(claims(SCHEDULER_SA, { iat: 1, exp: 3601 }))}`, 401],
    ["a token for another service", `Bearer ${jwt(claims(SCHEDULER_SA, { aud: "https://other-abc123-ew.a.run.app" }))}`, 401],
    ["a valid token of an account that is not an invoker", `Bearer ${jwt(claims("stranger@example.com"))}`, 403],
  ])("with the invoker check on, refuses %s itself and forwards nothing", async (_what, authorization, status) => {
    const f = await start(true);
    seen = [];
    expect((await call(f, authorization)).status).toBe(status);
    expect(seen).toEqual([]);
    expect(f.refused()).toHaveLength(1);
    await f.close();
  });

  it("with the invoker check off, forwards every Authorization header untouched", async () => {
    const f = await start(false);
    seen = [];
    const token = jwt(claims("stranger@example.com"), attacker.privateKey);
    for (const authorization of [undefined, `Bearer ${token}`, `Bearer ${stripped(token)}`]) expect((await call(f, authorization)).status).toBe(200);
    expect(seen).toEqual([undefined, `Bearer ${token}`, `Bearer ${stripped(token)}`]);
    await f.close();
  });
});

describe("the scheduler service behind Cloud Run's front end, as the manifests deploy it", () => {
  let dir: string;
  let frontend: CloudRunFrontend | undefined;
  const harness = serviceHarness({
    token: "unused",
    storeDir: () => join(dir, "store"),
    launcher: () => new LocalLauncher({ stateDir: join(dir, "executions") }),
    main: () => harness.started[0]!,
  });
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "shardrun-frontend-"));
  });
  afterEach(async () => {
    await frontend?.close();
    frontend = undefined;
    await harness.stopAll();
    harness.started.length = 0;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The app configured from the manifest's env, behind a front end with the invoker check as `env` says. */
  async function deploy(env: NodeJS.ProcessEnv, invokerIamCheck: boolean): Promise<{ app: Started; via: Started }> {
    const auth = authenticatorFromEnv(env, undefined, { certs: CERTS });
    if (!auth) throw new Error("the manifest configures no authenticator");
    const app = await harness.start(auth);
    frontend = await CloudRunFrontend.start({ target: app.base, invokerIamCheck, audiences: [SERVICE_URL], invokers: [SCHEDULER_SA, OTHER_INVOKER], certs: CERTS });
    return { app, via: { ...app, base: frontend.url } };
  }

  it("manifests/service.yaml keeps Cloud Run's invoker IAM check on", () => {
    expect(readServiceManifest().annotations["run.googleapis.com/invoker-iam-disabled"]).toBeUndefined();
  });

  describe("invoker IAM check on (manifests/service.yaml)", () => {
    it("answers Cloud Scheduler's calls, which reach it with the signature stripped", async () => {
      const { via } = await deploy(deployedEnv(), true);
      const token = `Bearer ${jwt(claims(SCHEDULER_SA))}`;
      const runs = await harness.api("GET", "/v1/runs", { on: via, headers: { authorization: token } });
      expect(runs.status).toBe(200);
      const reconcile = await harness.api("POST", "/v1/reconcile", { on: via, headers: { authorization: token } });
      expect(reconcile.status).toBe(200);
      expect(frontend!.events.map((e) => e.forwardedAuthorization?.endsWith(`.${SIGNATURE_REMOVED}`))).toEqual([true, true]);
    });

    it("still refuses an invoker that is not in its allow-list (403), changing nothing", async () => {
      const { via } = await deploy(deployedEnv(), true);
      await harness.unchanged(async () => {
        const r = await harness.api("POST", "/v1/reconcile", { on: via, headers: { authorization: `Bearer ${jwt(claims(OTHER_INVOKER))}` } });
        expect(r.status).toBe(403);
        expect(r.body.error.message).toContain(OTHER_INVOKER);
      });
      expect(frontend!.refused()).toEqual([]);
    });
  });

  describe("invoker IAM check off (--no-invoker-iam-check, SHARDRUN_INVOKER_IAM_CHECK=off)", () => {
    const env = () => deployedEnv({ [ENV.invokerIamCheck]: "off" });

    it("verifies the signature itself and answers a correctly signed token", async () => {
      const { via } = await deploy(env(), false);
      const r = await harness.api("GET", "/v1/runs", { on: via, headers: { authorization: `Bearer ${jwt(claims(SCHEDULER_SA))}` } });
      expect(r.status).toBe(200);
    });

    it("refuses a token whose signature was stripped: anyone can write one", async () => {
      const { via } = await deploy(env(), false);
      const forged = stripped(jwt(claims(SCHEDULER_SA), attacker.privateKey));
      await harness.unchanged(async () => {
        const r = await harness.api("POST", "/v1/reconcile", { on: via, headers: { authorization: `Bearer ${forged}` } });
        expect(r.status).toBe(401);
        expect(r.body.error.message).toMatch(/signature/);
      });
    });
  });
});
