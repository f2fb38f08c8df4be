/**
 * Where the Cloud Run clients connect. Production: run.googleapis.com with Application Default
 * Credentials. With SHARDRUN_CLOUD_RUN_ENDPOINT=host:port: that endpoint, in plaintext and with
 * no credentials (an emulator, or the test fake), the way STORAGE_EMULATOR_HOST works for Cloud
 * Storage.
 */
import { googleAuthLibrary, grpc, type ClientOptions } from "google-gax";
import { UsageError } from "../core/errors.js";
import { ENV } from "../config/env.js";

export function cloudRunClientOptions(env: NodeJS.ProcessEnv = process.env): ClientOptions | undefined {
  const endpoint = env[ENV.cloudRunEndpoint];
  if (!endpoint) return undefined;
  const m = /^([^:/]+):(\d{1,5})$/.exec(endpoint);
  if (!m) throw new UsageError(`${ENV.cloudRunEndpoint}: expected host:port, got "${endpoint}"`);
  return {
    apiEndpoint: m[1]!,
    port: Number(m[2]),
    sslCreds: grpc.credentials.createInsecure(),
    authClient: new googleAuthLibrary.PassThroughClient(),
  };
}
