/**
 * Questions about a Cloud Storage bucket itself, for `shardrun doctor`: does it exist, which of
 * the permissions the store needs does the caller hold (`testIamPermissions`, which needs no
 * permission of its own and answers 404 for a bucket that does not exist), and who holds which
 * role on it. Only reads. The client is set up as the store's (gcs.ts): an emulator host from
 * STORAGE_EMULATOR_HOST, no retries of the library's own.
 */
import { Storage } from "@google-cloud/storage";
import { ENV } from "../config/env.js";
import { errorMessage, ShardrunError } from "../core/errors.js";
import type { IamPolicy } from "../core/iam.js";
import { statusOf } from "./retry.js";

export interface BucketOptions {
  /** Where STORAGE_EMULATOR_HOST is read from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default 30000 */
  timeoutMs?: number;
}

function client(options: BucketOptions): Storage {
  const env = options.env ?? process.env;
  const emulator = env[ENV.storageEmulator]?.trim();
  const apiEndpoint = emulator ? (/^https?:\/\//.test(emulator) ? emulator : `http://${emulator}`) : undefined;
  const storage = new Storage({ ...(apiEndpoint ? { apiEndpoint } : {}), timeout: options.timeoutMs ?? 30_000 });
  // As in gcs.ts: one endpoint for all calls when an emulator is named.
  if (apiEndpoint) storage.baseUrl = `${storage.apiEndpoint}/storage/v1`;
  return storage;
}

function bucketError(what: string, bucket: string, error: unknown): ShardrunError {
  const status = statusOf(error);
  const advice =
    status === 401 ? "no valid credentials: run `gcloud auth application-default login`" : status === 403 ? `permission denied on gs://${bucket}` : undefined;
  return new ShardrunError("INTERNAL", `${what} gs://${bucket}: ${errorMessage(error)}${advice ? ` (${advice})` : ""}`, { cause: error });
}

/**
 * Which of `permissions` the caller holds on the bucket; null when the bucket does not exist.
 * @example await bucketPermissions("acme-shardrun", ["storage.objects.get"]) // ["storage.objects.get", …]
 */
export async function bucketPermissions(bucket: string, permissions: readonly string[], options: BucketOptions = {}): Promise<string[] | null> {
  try {
    const [held] = await client(options).bucket(bucket).iam.testPermissions([...permissions]);
    return permissions.filter((p) => held[p] === true);
  } catch (error) {
    if (statusOf(error) === 404) return null;
    throw bucketError("could not test permissions on", bucket, error);
  }
}

/** The bucket's IAM policy (version 3, so that conditional bindings show as such); null when there is no such bucket. */
export async function bucketIamPolicy(bucket: string, options: BucketOptions = {}): Promise<IamPolicy | null> {
  try {
    const [policy] = await client(options).bucket(bucket).iam.getPolicy({ requestedPolicyVersion: 3 });
    return { bindings: (policy.bindings ?? []).map((b) => ({ role: String(b.role ?? ""), members: (b.members ?? []).map(String), ...(b.condition ? { conditional: true } : {}) })) };
  } catch (error) {
    if (statusOf(error) === 404) return null;
    throw bucketError("could not read the IAM policy of", bucket, error);
  }
}
