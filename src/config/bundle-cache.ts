/**
 * Bundles on this machine: a folder of `<sha256>.mjs` files that tasks and commands import. A
 * task fetches its run's bundle from the store once per machine; every later task finds it here.
 * The folder is private to the user, and a file is checked against its name before every import,
 * so a file planted or half-written there never runs.
 */
import { createHash, randomBytes } from "node:crypto";
import { lstatSync, mkdirSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { InvalidInputError, ShardrunError } from "../core/errors.js";
import type { ObjectStore } from "../store/port.js";
import { ENV } from "./env.js";
import { packageRoot } from "./paths.js";

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * The query parameter through which a loader tells a bundle where shardrun lives on this machine
 * (a file URL ending in "/"). Modules of the package see `import.meta.url` as their own place
 * under it, whatever folder the bundle itself was cached in (bundle.ts writes the other side).
 */
export const ROOT_PARAM = "shardrun-root";

/** `bundles/<sha256>.mjs` of the store layout, back to its hash; null for anything else. */
export function bundleHash(key: string): string | null {
  const m = /^bundles\/([0-9a-f]{64})\.mjs$/.exec(key);
  return m ? m[1]! : null;
}

/** SHARDRUN_BUNDLE_CACHE, else `shardrun-bundles-<user>` in the OS temp folder. */
export function bundleCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env[ENV.bundleCache] || join(tmpdir(), `shardrun-bundles-${safeUser()}`);
}

function safeUser(): string {
  try {
    return userInfo().username.replace(/[^A-Za-z0-9_-]/g, "_") || String(process.getuid?.() ?? "user");
  } catch {
    return String(process.getuid?.() ?? "user");
  }
}

/** Makes the folder, private to this user; refuses one that others could write into. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    throw new ShardrunError("INTERNAL", `the bundle cache ${dir} is not a folder of this user's that only this user can write: remove it, or set ${ENV.bundleCache}`);
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The path of the cached bundle `hash`, writing `bytes` there first unless a good copy is there.
 * Written to a temporary name and renamed, so that tasks starting together never see half a file.
 */
export async function cacheBundle(hash: string, bytes: Uint8Array, dir: string = bundleCacheDir()): Promise<string> {
  if (!SHA256.test(hash) || sha256(bytes) !== hash) throw new InvalidInputError(`bundle ${hash}: its bytes do not match its hash`);
  ensurePrivateDir(dir);
  const path = join(dir, `${hash}.mjs`);
  if (await cachedCopy(path, hash)) return path;
  const tmp = join(dir, `.${hash}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    await writeFile(tmp, bytes, { mode: 0o600 });
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  return path;
}

/** The bytes of the cached bundle `hash`, when this machine has a good copy; else null. */
export async function readCachedBundle(hash: string, dir: string = bundleCacheDir()): Promise<Uint8Array | null> {
  try {
    const bytes = await readFile(join(dir, `${hash}.mjs`));
    return sha256(bytes) === hash ? bytes : null;
  } catch {
    return null;
  }
}

/** True when `path` holds exactly the bundle `hash`. */
async function cachedCopy(path: string, hash: string): Promise<boolean> {
  try {
    return sha256(await readFile(path)) === hash;
  } catch {
    return false;
  }
}

/**
 * The path of the bundle recorded under `key`, from this machine's cache or else fetched from the
 * store (once) and checked against its hash.
 */
export async function fetchBundle(store: ObjectStore, key: string, dir: string = bundleCacheDir()): Promise<string> {
  const hash = bundleHash(key);
  if (!hash) throw new InvalidInputError(`run.json: job.bundle "${key}" is not a bundle key (bundles/<sha256>.mjs)`);
  const path = join(dir, `${hash}.mjs`);
  ensurePrivateDir(dir);
  if (await cachedCopy(path, hash)) return path;
  const obj = await store.get(key);
  if (!obj) throw new ShardrunError("NOT_FOUND", `the run's job bundle ${key} is not in ${store.url}`);
  if (sha256(obj.bytes) !== hash) throw new InvalidInputError(`${key} in ${store.url} does not match its hash: the object is damaged`);
  return cacheBundle(hash, obj.bytes, dir);
}

/**
 * Imports a cached bundle. The URL tells the bundle where this machine's shardrun package is (see
 * ROOT_PARAM), so that modules of the package find their files next to them.
 */
export async function importBundle(path: string, root: string = packageRoot()): Promise<Record<string, unknown>> {
  const url = new URL(pathToFileURL(path).href);
  url.searchParams.set(ROOT_PARAM, pathToFileURL(join(root, "/")).href);
  return (await import(url.href)) as Record<string, unknown>;
}
