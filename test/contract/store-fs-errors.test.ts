/**
 * The fs store when its disk says no: a full disk (ENOSPC, EDQUOT, injected at each file-system
 * call of a write) is a StoreFull naming the folder and what to free, and leaves nothing behind;
 * a store path that is a file is a UsageError, from the adapter, from openStore and through the
 * CLI (it used to be "internal error: ENOTDIR" on `run` and "no runs yet" on `runs`).
 */
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsObjectStore, type FsWriteCall } from "../../src/store/fs.js";
import { openStore } from "../../src/store/open.js";
import { cli, SLEEPY } from "../e2e/helpers.js";

const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);
const errno = (code: string) => Object.assign(new Error(`${code}: injected`), { code });

/** Every file under `dir`, relative, so a test can show nothing was left behind. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "shardrun-store-errors-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("FsObjectStore on a full disk", () => {
  /** A store whose disk fails `call` with `code` while `failing` is on, after `skip` such calls went through. */
  function flaky(call: FsWriteCall, code: string, skip = 0) {
    const state = { failing: true, hits: 0, passed: 0 };
    const store = new FsObjectStore(root, {
      beforeWrite: (c) => {
        if (!state.failing || c !== call) return;
        if (state.passed++ < skip) return;
        state.hits++;
        throw errno(`${code}`);
      },
    });
    return { store, state };
  }

  it.each([
    ["write", false, 0, "the temp file"],
    ["write", true, 0, "the temp file"],
    ["write", true, 1, "the sidecar"],
    ["link", false, 0, "the link"],
    ["link", true, 0, "the link"],
  ] as const)("reports ENOSPC at %s (metadata: %s, skip %i: %s) as StoreFull, changes nothing, and works once space is back", async (call, withMetadata, skip, _where) => {
    const { store, state } = flaky(call, "ENOSPC", skip);
    state.failing = false;
    const first = await store.put("runs/x/checkpoint.json", "v1", { metadata: { state: "running" } });
    const before = await files(root);
    state.failing = true;
    state.passed = 0;
    const attempt = store.put("runs/x/checkpoint.json", "v2", { ifGenerationMatch: first, ...(withMetadata ? { metadata: { state: "done" } } : {}) });
    await expect(attempt).rejects.toMatchObject({
      name: "StoreFull",
      code: "STORE_FULL",
      store: store.url,
      message: expect.stringMatching(new RegExp(`^store ${root} is full \\(no space left on the device, ENOSPC\\): free space .*${join(root, "runs")}`)),
    });
    expect(state.hits).toBeGreaterThan(0);
    // No temp file, no sidecar, no generation: the folder is as it was.
    expect(await files(root)).toEqual(before);
    expect(await store.get("runs/x/checkpoint.json")).toEqual({ bytes: expect.anything(), generation: first, metadata: { state: "running" } });
    state.failing = false;
    const second = await store.put("runs/x/checkpoint.json", "v2", { ifGenerationMatch: first, metadata: { state: "done" } });
    expect(await store.get("runs/x/checkpoint.json")).toEqual({ bytes: expect.anything(), generation: second, metadata: { state: "done" } });
  });

  it("reports a full disk when the first write makes the object's folder", async () => {
    const { store } = flaky("mkdir", "ENOSPC");
    await expect(store.put("fresh/key", "x")).rejects.toMatchObject({ code: "STORE_FULL" });
    expect(await store.get("fresh/key")).toBeNull();
  });

  it("names a disk quota as such", async () => {
    const { store } = flaky("write", "EDQUOT");
    await expect(store.put("k", "x")).rejects.toMatchObject({ code: "STORE_FULL", message: expect.stringContaining("disk quota exceeded, EDQUOT") });
    expect(await files(root)).toEqual([]);
  });

  it("passes other disk errors through unchanged", async () => {
    const { store } = flaky("link", "EIO");
    await expect(store.put("k", "x")).rejects.toMatchObject({ code: "EIO" });
  });
});

describe("a store path that is not a folder", () => {
  it("is refused by the adapter, on reads, lists and writes, naming the file", async () => {
    const file = join(root, "store.txt");
    await writeFile(file, "not a folder");
    const store = new FsObjectStore(file);
    const refused = { code: "USAGE", message: `store ${file}: not a folder (it is a file)` };
    await expect(store.get("k")).rejects.toMatchObject(refused);
    await expect(store.list("")).rejects.toMatchObject(refused);
    await expect(store.put("k", "x")).rejects.toMatchObject(refused);
    await expect(store.delete("k")).rejects.toMatchObject(refused);
  });

  it("is refused by openStore, naming the file in the way of a deeper path", async () => {
    const file = join(root, "store.txt");
    await writeFile(file, "x");
    await expect(openStore(file)).rejects.toMatchObject({ code: "USAGE", message: `store ${file}: not a folder (it is a file)` });
    await expect(openStore(join(file, "deeper"))).rejects.toMatchObject({ code: "USAGE", message: `store ${join(file, "deeper")}: not a folder (${file} is a file)` });
    // A folder that does not exist yet is fine: it is made on the first write.
    const store = await openStore(join(root, "new", "store"));
    await store.put("k", "x");
    expect(text((await store.get("k"))?.bytes)).toBe("x");
  });

  it.each([["runs"], ["run", SLEEPY, "--local"]])("makes `shardrun %s --store <file>` exit 2 with one line", async (...args) => {
    const file = join(root, "store.txt");
    await writeFile(file, "x");
    const r = await cli([...args, "--store", file], root);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`shardrun: store ${file}: not a folder (it is a file)\n`);
  });
});
