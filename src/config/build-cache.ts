/**
 * Building a job only when its code changed. Every build records what it read: each module (from
 * esbuild's metafile) and each package.json and tsconfig.json on their folders' way up, with the
 * sha256 of their bytes, and where such a file was not. The next build of the same entry hashes
 * those files again; when every one is unchanged and none appeared, the bundle those bytes made is
 * reused and esbuild does not run. Content, not mtimes, decides: a reused bundle is exactly what a
 * build would make. A file modified after the build started is not trusted: that build is not
 * recorded.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";

const BuildRecord = z.object({
  v: z.literal(1),
  /** sha256 of the bundle these files made. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Absolute path -> sha256 of its bytes, for every file the build depended on. */
  files: z.record(z.string(), z.string()),
  /** Configuration files that were not there, and would change the build if they appeared. */
  absent: z.array(z.string()).default([]),
});
type BuildRecord = z.infer<typeof BuildRecord>;

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

/** The name of a build's record: what was built, how, and with which tools. */
export function buildKey(parts: Record<string, string>): string {
  return sha(JSON.stringify(parts));
}

function recordPath(dir: string, key: string): string {
  return join(dir, "builds", `${key}.json`);
}

/** The sha256 of the bundle the recorded build made, when every file it read is unchanged; else null. */
export async function unchangedBuild(dir: string, key: string): Promise<string | null> {
  let record: BuildRecord;
  try {
    const parsed = BuildRecord.safeParse(JSON.parse(await readFile(recordPath(dir, key), "utf8")));
    if (!parsed.success) return null;
    record = parsed.data;
  } catch {
    return null;
  }
  if (record.absent.some((path) => existsSync(path))) return null;
  const same = await Promise.all(Object.entries(record.files).map(async ([path, hash]) => (await readFile(path).then(sha, () => null)) === hash));
  return same.every(Boolean) ? record.sha256 : null;
}

/**
 * Records a build: the modules it read (absolute paths) and the configuration files that govern
 * them. Not recorded when one of them changed after `startedAt`: the bundle may hold the old bytes.
 */
export async function recordBuild(dir: string, key: string, sha256: string, modules: readonly string[], startedAt: number, stopAt?: string): Promise<void> {
  const config = configFiles(modules, stopAt);
  const files = [...modules, ...config.present];
  const entries: [string, string][] = [];
  for (const path of files) {
    try {
      // A second of margin: some file systems keep coarse modification times.
      if ((await stat(path)).mtimeMs >= startedAt - 1000) return;
      entries.push([path, sha(await readFile(path))]);
    } catch {
      return; // gone already: nothing to vouch for
    }
  }
  const record: BuildRecord = { v: 1, sha256, files: Object.fromEntries(entries), absent: config.absent };
  const path = recordPath(dir, key);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(record), { mode: 0o600 });
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * package.json and tsconfig.json in the modules' folders and above (up to `stopAt`, else the file
 * system root): those there, and those not there (one appearing would change the build too).
 */
function configFiles(modules: readonly string[], stopAt?: string): { present: string[]; absent: string[] } {
  const seen = new Set<string>();
  const present: string[] = [];
  const absent: string[] = [];
  for (const m of modules) {
    for (let dir = dirname(m); !seen.has(dir); dir = dirname(dir)) {
      seen.add(dir);
      for (const name of ["package.json", "tsconfig.json"]) (existsSync(join(dir, name)) ? present : absent).push(join(dir, name));
      if (dir === stopAt || dirname(dir) === dir) break;
    }
  }
  return { present, absent };
}
