/**
 * The Google calls of `shardrun doctor` that no client library of the project makes, through
 * google-auth-library (no heavier dependency): which credentials Application Default
 * Credentials find and whose they are, and the IAM policies of the project (Resource Manager
 * REST API) and of a service account (IAM REST API), read with ADC's authenticated client.
 *
 * As for the other Google APIs, an endpoint named in the environment
 * (SHARDRUN_RESOURCE_MANAGER_ENDPOINT, SHARDRUN_IAM_ENDPOINT) is an emulator or a fake: called
 * in plaintext with no credentials.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { BaseExternalAccountClient, Compute, GoogleAuth, Impersonated, JWT, PassThroughClient, UserRefreshClient, type AuthClient } from "google-auth-library";
import { z } from "zod";
import { ENV } from "../config/env.js";
import { errorMessage, ShardrunError } from "../core/errors.js";
import type { IamPolicy } from "../core/iam.js";

const SCOPES = ["https://www.googleapis.com/auth/cloud-platform"];

/** What ADC found. */
export interface FoundCredentials {
  /** e.g. "a service account key file", "the metadata server"; absent when none were found. */
  kind?: string;
  /** Where they came from: a file, or the metadata server's host. */
  source?: string;
  /** Whose they are, when that can be known. */
  email?: string;
  /** Whether an access token could be had with them. */
  token: boolean;
  /** Why not, when something failed. */
  error?: string;
}

function kindOf(client: AuthClient): string {
  if (client instanceof JWT) return "a service account key file";
  if (client instanceof Compute) return "the metadata server (a Google Cloud runtime's service account)";
  if (client instanceof UserRefreshClient) return "gcloud user credentials (gcloud auth application-default login)";
  if (client instanceof Impersonated) return "an impersonated service account";
  if (client instanceof BaseExternalAccountClient) return "workload identity federation";
  return client.constructor.name;
}

function sourceOf(client: AuthClient, env: NodeJS.ProcessEnv, home: string): string | undefined {
  if (env.GOOGLE_APPLICATION_CREDENTIALS) return env.GOOGLE_APPLICATION_CREDENTIALS;
  if (client instanceof Compute) return env.GCE_METADATA_HOST ?? env.GCE_METADATA_IP ?? "169.254.169.254";
  const gcloud = env.CLOUDSDK_CONFIG ?? join(home, ".config", "gcloud");
  const file = join(gcloud, "application_default_credentials.json");
  return existsSync(file) ? file : undefined;
}

/**
 * The credentials ADC finds (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, or the metadata
 * server), whose they are (a key file and the metadata server say; for a person's gcloud
 * credentials, the token info endpoint does), and whether they give an access token.
 */
export async function findCredentials(env: NodeJS.ProcessEnv = process.env, home = homedir()): Promise<FoundCredentials> {
  const auth = new GoogleAuth({ scopes: SCOPES });
  let client: AuthClient;
  try {
    client = await auth.getClient();
  } catch (e) {
    return { token: false, error: errorMessage(e).split("\n")[0]! };
  }
  const found: FoundCredentials = { kind: kindOf(client), token: false };
  const source = sourceOf(client, env, home);
  if (source) found.source = source;
  try {
    const email = (await auth.getCredentials()).client_email;
    if (email) found.email = email;
  } catch {
    // not every kind can say (a person's gcloud credentials): the token info may
  }
  try {
    const { token } = await client.getAccessToken();
    found.token = typeof token === "string" && token.length > 0;
    if (!found.token) found.error = "no access token was returned";
    if (found.token && !found.email && client instanceof UserRefreshClient) {
      const info = await client.getTokenInfo(token!).catch(() => null);
      if (info?.email) found.email = info.email;
    }
  } catch (e) {
    found.error = `no access token: ${errorMessage(e).split("\n")[0]!}`;
  }
  return found;
}

const Policy = z.object({
  bindings: z.array(z.object({ role: z.string(), members: z.array(z.string()).default([]), condition: z.unknown().optional() })).default([]),
});

/** ADC's client, or none for an emulator endpoint. */
async function clientFor(endpoint: string | undefined): Promise<AuthClient> {
  return endpoint ? new PassThroughClient() : new GoogleAuth({ scopes: SCOPES }).getClient();
}

async function readPolicy(what: string, url: string, endpoint: string | undefined, data: unknown, notFound: "null" | "throw"): Promise<IamPolicy | null> {
  let status: number | undefined;
  try {
    const client = await clientFor(endpoint);
    const res = await client.request<unknown>({ url, method: "POST", data, headers: { "content-type": "application/json" }, retry: true, retryConfig: { retry: 3, httpMethodsToRetry: ["POST"] } });
    const p = Policy.safeParse(res.data);
    if (!p.success) throw new Error(`unexpected answer: ${JSON.stringify(res.data).slice(0, 200)}`);
    return { bindings: p.data.bindings.map((b) => ({ role: b.role, members: b.members, ...(b.condition ? { conditional: true } : {}) })) };
  } catch (e) {
    status = (e as { status?: unknown; response?: { status?: unknown } }).response?.status as number | undefined;
    if (status === 404 && notFound === "null") return null;
    const advice = status === 403 ? " (permission denied: reading it needs roles/iam.securityReviewer or roles/viewer)" : status === 401 ? " (no valid credentials: run `gcloud auth application-default login`)" : "";
    throw new ShardrunError("INTERNAL", `could not read ${what}: ${errorMessage(e).split("\n")[0]!}${advice}`, { cause: e });
  }
}

/** The project's IAM policy (Resource Manager v1 `projects.getIamPolicy`, policy version 3). */
export async function projectIamPolicy(project: string, env: NodeJS.ProcessEnv = process.env): Promise<IamPolicy> {
  const endpoint = env[ENV.resourceManagerEndpoint]?.replace(/\/+$/, "") || undefined;
  const base = endpoint ?? "https://cloudresourcemanager.googleapis.com";
  const policy = await readPolicy(`the IAM policy of project ${project}`, `${base}/v1/projects/${encodeURIComponent(project)}:getIamPolicy`, endpoint, { options: { requestedPolicyVersion: 3 } }, "throw");
  return policy!;
}

/** A service account's own IAM policy (who may act as it); null when there is no such account. */
export async function serviceAccountIamPolicy(project: string, email: string, env: NodeJS.ProcessEnv = process.env): Promise<IamPolicy | null> {
  const endpoint = env[ENV.iamEndpoint]?.replace(/\/+$/, "") || undefined;
  const base = endpoint ?? "https://iam.googleapis.com";
  const url = `${base}/v1/projects/${encodeURIComponent(project)}/serviceAccounts/${encodeURIComponent(email)}:getIamPolicy?options.requestedPolicyVersion=3`;
  return readPolicy(`the IAM policy of service account ${email}`, url, endpoint, {}, "null");
}
