/**
 * The fs store's files, one level below the adapter: generation files (a header byte, then the
 * bytes), metadata sidecars, and the errors of the disk under them. See fs.ts for why the layout
 * is safe without locks.
 *
 * The calls are synchronous: each is a few microseconds on a local disk, where a promise-based
 * call costs a trip through libuv's thread pool and back (measured: a put of a checkpoint with
 * metadata took 2.9 ms through fs/promises on this project's two-core machine, most of it
 * waiting for the pool). Nothing here depends on calls interleaving: every step of a write is
 * safe against other processes, whose calls interleave with ours anyway.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { ShardrunError, StoreFull, UsageError } from "../core/errors.js";
import { METADATA_KEY_PATTERN, type ByteRange, type ObjectMetadata } from "./port.js";

export const DATA = 0x44; // "D"
export const TOMBSTONE = 0x54; // "T"

/** One generation as read: its header, the bytes asked for, and its file's identity. */
export interface GenerationRead {
  header: typeof DATA | typeof TOMBSTONE;
  /** The whole object, or the bytes of the range (clipped to the object's end). */
  bytes: Uint8Array;
  /** Size of the object (the file less its header). */
  size: number;
  /** The generation file's inode: names its sidecar. */
  ino: number;
  /** Modification time of the generation file, ms since the epoch. */
  mtimeMs: number;
  metadata: ObjectMetadata;
}

export function generationFile(dir: string, generation: number): string {
  return path.join(dir, String(generation));
}

/**
 * The metadata sidecar of generation `generation` whose file is inode `ino`. The inode makes the
 * name unique to one writer: a writer that races for a generation writes its sidecar before it
 * links, and only the winner's file has the inode the name carries, so a reader never pairs a
 * generation with another writer's metadata. The numeric scan for the latest generation never
 * sees these names (they are not plain numbers).
 */
export function sidecarFile(dir: string, generation: number, ino: number): string {
  return path.join(dir, `${generation}.${ino}.meta`);
}

/**
 * A sidecar's content: the metadata, and the size and modification time of the file it was
 * written for. Those tell a sidecar left by a writer killed before its link (whose inode a later
 * file may reuse) from the sidecar of the file that now holds the name.
 */
export const Sidecar = z.strictObject({
  size: z.number().int().min(1),
  mtimeMs: z.number(),
  metadata: z.record(z.string().regex(METADATA_KEY_PATTERN), z.string()),
});
export type Sidecar = z.infer<typeof Sidecar>;

export function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? "");
}

/** The result, or null where the path does not exist. */
export function unlessMissing<T>(call: () => T): T | null {
  try {
    return call();
  } catch (error) {
    if (hasCode(error, "ENOENT", "ENOTDIR")) return null;
    throw error;
  }
}

export function exists(file: string): boolean {
  return unlessMissing(() => (fs.accessSync(file), true)) ?? false;
}

export function checkHeader(byte: number | undefined, file: string): typeof DATA | typeof TOMBSTONE {
  if (byte === DATA || byte === TOMBSTONE) return byte;
  throw new ShardrunError("INTERNAL", `${file} is not a generation file of this store (header ${byte})`);
}

/** DATA or TOMBSTONE; null if the file is missing or was truncated (superseded). */
export function readHeader(file: string): number | null {
  const fd = unlessMissing(() => fs.openSync(file, "r"));
  if (fd === null) return null;
  try {
    const buffer = Buffer.alloc(1);
    const bytesRead = fs.readSync(fd, buffer, 0, 1, 0);
    return bytesRead === 0 ? null : checkHeader(buffer[0], file);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads one generation: the whole object or a range of it, and with `withBytes` false only its
 * header, size and metadata. Null if the file is missing or was truncated (superseded) before or
 * while it was read: files never grow back, so an unchanged size afterwards proves a read whole.
 */
export function readGeneration(dir: string, generation: number, options: { range?: ByteRange; withBytes: boolean }): GenerationRead | null {
  const file = generationFile(dir, generation);
  const fd = unlessMissing(() => fs.openSync(file, "r"));
  if (fd === null) return null;
  try {
    const { size: fileSize, ino, mtimeMs } = fs.fstatSync(fd);
    if (fileSize === 0) return null;
    const size = fileSize - 1;
    // The header byte and the bytes asked for, in one read: [0, 1) and [1 + start, 1 + end).
    const start = options.withBytes ? Math.min(options.range?.start ?? 0, size) : 0;
    const end = options.withBytes ? Math.min(options.range?.end ?? size, size) : 0;
    const content = Buffer.allocUnsafe(1 + Math.max(0, end - start));
    if (start === 0) {
      if (readFully(fd, content, 0, content.length, 0) !== content.length) return null;
    } else {
      if (readFully(fd, content, 0, 1, 0) !== 1) return null;
      if (readFully(fd, content, 1, content.length - 1, 1 + start) !== content.length - 1) return null;
    }
    const header = checkHeader(content[0], file);
    // A plain Uint8Array view, not a Buffer: callers compare and decode it like any other.
    const bytes = new Uint8Array(content.buffer, content.byteOffset + 1, content.length - 1);
    const sidecar = header === TOMBSTONE ? null : readSidecar(sidecarFile(dir, generation, ino));
    const metadata = sidecar && sidecar.size === fileSize && sidecar.mtimeMs === mtimeMs ? sidecar.metadata : null;
    // Writers truncate a superseded generation first, then remove its sidecar: a size unchanged
    // now proves both the bytes and the sidecar (or its absence) were this generation's.
    if (fs.fstatSync(fd).size !== fileSize) return null;
    return { header, bytes, size, ino, mtimeMs, metadata: metadata ?? {} };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads `length` bytes at `position` (fewer only at the file's end), as one read may return less. */
function readFully(fd: number, into: Buffer, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, into, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Removes a file if it is there, in one call (fs.rm would look first, twice). */
export function removeFile(file: string): void {
  unlessMissing(() => fs.unlinkSync(file));
}

function readSidecar(file: string): Sidecar | null {
  const text = unlessMissing(() => fs.readFileSync(file, "utf8"));
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const sidecar = Sidecar.safeParse(parsed);
  if (!sidecar.success) throw new ShardrunError("INTERNAL", `${file} is not a metadata sidecar of this store: the store folder was changed outside shardrun`);
  return sidecar.data;
}

/**
 * Why a store folder cannot be used, or undefined when it can (it is a folder, or does not exist
 * yet and will be made on the first write).
 */
export async function notAFolder(root: string): Promise<string | undefined> {
  try {
    const stat = fs.statSync(root);
    return stat.isDirectory() ? undefined : `store ${root}: not a folder (it is a ${stat.isFile() ? "file" : "special file"})`;
  } catch (error) {
    if (hasCode(error, "ENOENT")) return undefined;
    if (!hasCode(error, "ENOTDIR")) throw error;
  }
  // A parent is not a folder: name the one that is in the way.
  for (let parent = path.dirname(root); parent !== path.dirname(parent); parent = path.dirname(parent)) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(parent);
    } catch {
      stat = undefined;
    }
    if (stat && !stat.isDirectory()) return `store ${root}: not a folder (${parent} is a file)`;
  }
  return `store ${root}: not a folder`;
}

/** A UsageError when `root` is not a folder; nothing when it is, or does not exist yet. */
export async function assertStoreFolder(root: string): Promise<void> {
  const why = await notAFolder(root);
  if (why) throw new UsageError(why);
}

/** The error a caller should see for a failed write: a full disk becomes StoreFull. */
export function writeError(error: unknown, root: string, url: string): unknown {
  if (!hasCode(error, "ENOSPC", "EDQUOT")) return error;
  const quota = hasCode(error, "EDQUOT");
  return new StoreFull(
    url,
    `store ${root} is full (${quota ? "disk quota exceeded, EDQUOT" : "no space left on the device, ENOSPC"}): ` +
      `free space on ${quota ? "your quota" : "that disk"} (each run is a folder under ${path.join(root, "runs")}) and run the command again; this write changed nothing`,
    { cause: error },
  );
}
