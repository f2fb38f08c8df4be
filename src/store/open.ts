/**
 * Chooses the store adapter by URL: a path or file:// -> fs; gs:// -> Cloud Storage. The
 * simulated store (sim.ts) is for tests and benches only and is never opened from a URL.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "../core/errors.js";
import type { ObjectStore } from "./port.js";

export async function openStore(url: string, cwd = process.cwd()): Promise<ObjectStore> {
  if (url.startsWith("gs://")) {
    // Loaded only when asked for: local runs never pay for the Cloud Storage client.
    const { GcsObjectStore } = await import("./gcs.js");
    return GcsObjectStore.fromUrl(url);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith("file://")) {
    throw new UsageError(`store "${url}": expected a folder path, file:///path or gs://bucket/prefix`);
  }
  const dir = url.startsWith("file://") ? fileURLToPath(url) : resolve(cwd, url);
  const { FsObjectStore, assertStoreFolder } = await import("./fs.js");
  // Refused here, once, with its reason: a file where the folder should be would otherwise
  // surface as ENOTDIR on the first write, or as an empty store to a reader.
  await assertStoreFolder(dir);
  return new FsObjectStore(dir);
}
