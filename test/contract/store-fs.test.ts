import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FsObjectStore } from "../../src/store/fs.js";
import { storeContract } from "./store-contract.js";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const childScript = fileURLToPath(new URL("./race-child.mjs", import.meta.url));
/** The adapter's modules, by path below src/ (and below dist/src/ once compiled). */
const adapterModules = ["store/fs", "store/fs-files", "store/port", "store/glob", "core/errors"];

const tempRoot = () => mkdtemp(join(tmpdir(), "shardrun-store-"));
const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);

storeContract("fs", async () => {
  const root = await tempRoot();
  return {
    store: new FsObjectStore(root),
    reopen: async () => new FsObjectStore(root),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

describe("FsObjectStore on disk", () => {
  let root: string;
  beforeEach(async () => {
    root = await tempRoot();
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("names itself by a file URL of its absolute root", () => {
    expect(new FsObjectStore(root).url).toBe(pathToFileURL(root).href);
    expect(new FsObjectStore("rel/dir").url).toBe(pathToFileURL(resolve("rel/dir")).href);
    expect(() => new FsObjectStore("")).toThrow("Expected `rootDir` to be a non-empty path");
  });

  it("keeps only the last two generations' bytes on disk and no temp files", async () => {
    const store = new FsObjectStore(root);
    const size = 64 * 1024;
    for (let i = 0; i < 20; i++) await store.put("k/v.bin", new Uint8Array(size).fill(i));
    const dir = join(root, "k", "v.bin@");
    const names = await readdir(dir);
    expect(names).toHaveLength(20); // names stay, so a late writer cannot reuse one
    const sizes = await Promise.all(names.map(async (name) => (await stat(join(dir, name))).size));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2 * (size + 1));
    expect((await store.get("k/v.bin"))!.bytes[0]).toBe(19);
    expect(await readdir(join(root, "@tmp"))).toEqual([]);
  });

  it("keeps metadata in a sidecar named by generation and inode; the generation file keeps its format", async () => {
    const store = new FsObjectStore(root);
    const generation = await store.put("m/k.json", '{"a":1}', { metadata: { state: "done" } });
    const dir = join(root, "m", "k.json@");
    expect(await readFile(join(dir, generation), "latin1")).toBe('D{"a":1}');
    const { ino } = await stat(join(dir, generation));
    expect((await readdir(dir)).sort()).toEqual([generation, `${generation}.${ino}.meta`]);
    const { size, mtimeMs } = await stat(join(dir, generation));
    expect(JSON.parse(await readFile(join(dir, `${generation}.${ino}.meta`), "utf8"))).toEqual({ size, mtimeMs, metadata: { state: "done" } });
    // Without metadata, no sidecar: a plain write costs what it always did.
    const plain = await store.put("m/plain", "x");
    expect(await readdir(join(root, "m", "plain@"))).toEqual([plain]);
  });

  it("ignores a sidecar left for another file that had the same inode (a writer killed before its link)", async () => {
    const store = new FsObjectStore(root);
    const generation = await store.put("m/k", "plain");
    const file = join(root, "m", "k@", generation);
    const { ino, size } = await stat(file);
    await writeFile(join(root, "m", "k@", `${generation}.${ino}.meta`), JSON.stringify({ size, mtimeMs: 1, metadata: { stale: "yes" } }));
    expect((await store.get("m/k"))?.metadata).toEqual({});
    expect((await store.list("m/", { withMetadata: true })).objects?.[0]?.metadata).toEqual({});
  });

  it("removes old sidecars with the generations it truncates", async () => {
    const store = new FsObjectStore(root);
    for (let i = 0; i < 12; i++) await store.put("m/k", `v${i}`, { metadata: { i: String(i) } });
    const dir = join(root, "m", "k@");
    const names = await readdir(dir);
    expect(names.filter((n) => !n.endsWith(".meta"))).toHaveLength(12);
    const sidecars = names.filter((n) => n.endsWith(".meta")).map((n) => Number(n.split(".")[0])).sort((a, b) => a - b);
    expect(sidecars).toEqual([11, 12]);
    expect(await store.get("m/k")).toMatchObject({ generation: "12", metadata: { i: "11" } });
    // A sidecar a reader cannot pair with its generation (its inode) is never read.
    await writeFile(join(dir, `12.1.meta`), '{"size":3,"mtimeMs":1,"metadata":{"forged":"yes"}}');
    expect((await store.get("m/k"))?.metadata).toEqual({ i: "11" });
  });

  it("finds the right generation after its folder was emptied and refilled", async () => {
    const store = new FsObjectStore(root);
    for (let i = 0; i < 5; i++) await store.put("k", `old ${i}`);
    await rm(root, { recursive: true, force: true });
    expect(await store.get("k")).toBeNull();
    const generation = await store.put("k", "new", { ifGenerationMatch: 0 });
    expect(await store.get("k")).toEqual({ bytes: expect.anything(), generation, metadata: {} });
    expect(text((await store.get("k"))?.bytes)).toBe("new");
  });

  it("reports a damaged latest generation instead of looping", async () => {
    const store = new FsObjectStore(root);
    const generation = await store.put("k", "x");
    await truncate(join(root, `k@`, generation), 0);
    await expect(store.get("k")).rejects.toMatchObject({ code: "INTERNAL" });
  });

  it("lists nothing that it did not write", async () => {
    const store = new FsObjectStore(root);
    await store.put("a/b", "x");
    await writeFile(join(root, "a", "stray-file"), "x");
    await writeFile(join(root, "loose"), "x");
    expect(await store.list("", { delimiter: "/" })).toEqual({ keys: [], prefixes: ["a/"] });
    expect((await store.list("")).keys).toEqual(["a/b"]);
  });

  it("refuses list options it cannot honour", async () => {
    const store = new FsObjectStore(root);
    await expect(store.list("", { delimiter: "-" })).rejects.toThrow('Expected `delimiter` to be "/" or undefined');
    await expect(store.list("", { maxResults: 0 })).rejects.toThrow("Expected `maxResults` to be an integer from 1 and up");
    await expect(store.list("", { pageToken: "not a token!" })).rejects.toThrow("Expected `pageToken`");
  });

  it("works the same with durable writes", async () => {
    const store = new FsObjectStore(root, { durable: true });
    const generation = await store.put("d/k", "synced", { ifGenerationMatch: 0 });
    expect(text((await new FsObjectStore(root).get("d/k"))?.bytes)).toBe("synced");
    expect(await store.delete("d/k", { ifGenerationMatch: generation })).toBe(true);
  });
});

interface ChildMessage {
  ready?: boolean;
  done?: boolean;
  won?: boolean;
  conflicts?: number;
  /** Reads whose metadata did not match their bytes (cas-meta). */
  mismatches?: number;
  generation?: string;
  /** Added by `race`, not sent by the child. */
  pid?: number;
}

/** file: URL of the children's private copy of the compiled adapter. */
let adapterUrl = "";

/**
 * Builds dist/ if the adapter there is missing or older than its sources, then copies the compiled
 * modules to a private folder: other people rebuild dist/ while tests run, and a child that
 * starts while dist/src/store/fs.js is being replaced would fail for no fault of the store.
 */
async function snapshotCompiledAdapter(): Promise<string> {
  const compiled = (module: string) => join(repo, "dist/src", `${module}.js`);
  const stale = () => {
    try {
      return adapterModules.some((m) => statSync(join(repo, "src", `${m}.ts`)).mtimeMs > statSync(compiled(m)).mtimeMs);
    } catch {
      return true; // not built (or being rebuilt right now)
    }
  };
  const folder = await mkdtemp(join(tmpdir(), "shardrun-adapter-"));
  // Without this the copied .js files would load as CommonJS.
  await writeFile(join(folder, "package.json"), '{ "type": "module" }\n');
  // The adapter's own imports (zod) resolve from the repository's packages.
  await symlink(join(repo, "node_modules"), join(folder, "node_modules"), "dir");
  for (let attempt = 1; ; attempt++) {
    // Others' unfinished files may fail the type check; tsc still emits, so only the output counts.
    if (stale()) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repo, stdio: "ignore" });
    try {
      for (const module of adapterModules) {
        await mkdir(join(folder, "src", dirname(module)), { recursive: true });
        await copyFile(compiled(module), join(folder, "src", `${module}.js`));
      }
      const url = pathToFileURL(join(folder, "src/store/fs.js")).href;
      // A copy taken while tsc was rewriting a file would be cut short: prove it loads.
      const check = spawnSync(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(url)})`]);
      if (check.status !== 0) throw new Error(check.stderr.toString());
      return url;
    } catch (error) {
      if (attempt === 3) {
        await rm(folder, { recursive: true, force: true });
        throw new Error(`could not build ${compiled("store/fs")}: run \`npx tsc -p tsconfig.build.json\``, { cause: error });
      }
    }
  }
}

/** Every child started, so that a failed test still kills its children before removing their folder. */
const running = new Set<Child>();

/** A race-child.mjs process with its protocol as promises. */
class Child {
  readonly process: ChildProcessWithoutNullStreams;
  readonly ready: Promise<ChildMessage>;
  readonly done: Promise<ChildMessage>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(mode: string, root: string, key: string, arg?: string) {
    const args = [childScript, mode, root, key, ...(arg === undefined ? [] : [arg])];
    const env = { ...process.env, SHARDRUN_RACE_ADAPTER: adapterUrl };
    this.process = spawn(process.execPath, args, { cwd: repo, env, stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    this.process.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    running.add(this);
    this.exited = new Promise((done) =>
      this.process.once("exit", (code, signal) => {
        running.delete(this);
        done({ code, signal });
      }),
    );
    const lines = createInterface({ input: this.process.stdout });
    const message = (field: "ready" | "done") =>
      new Promise<ChildMessage>((resolve, reject) => {
        lines.on("line", (line) => {
          const parsed = JSON.parse(line) as ChildMessage;
          if (parsed[field]) resolve(parsed);
        });
        lines.once("close", () => reject(new Error(`child ${mode} exited without "${field}": ${stderr}`)));
      });
    this.ready = message("ready");
    this.done = message("done");
    // Only one of ready/done may be awaited by a test; the other must not turn into an unhandled rejection.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  go(): void {
    this.process.stdin.end("go\n");
  }

  kill(): void {
    this.process.kill("SIGKILL");
  }
}

/** Starts `count` children, waits until all are ready, then lets them race at once. */
async function race(count: number, mode: string, root: string, key: string, arg?: string): Promise<ChildMessage[]> {
  const children = Array.from({ length: count }, () => new Child(mode, root, key, arg));
  const ready = await Promise.all(children.map((c) => c.ready));
  for (const child of children) child.go();
  const done = await Promise.all(children.map((c) => c.done));
  return children.map((c, i) => ({ ...ready[i], ...done[i], pid: c.process.pid }));
}

describe("FsObjectStore across processes", () => {
  const processes = 8;
  let root: string;
  let store: FsObjectStore;

  beforeAll(async () => {
    adapterUrl = await snapshotCompiledAdapter();
  });
  afterAll(async () => {
    if (adapterUrl) await rm(fileURLToPath(new URL("../../", adapterUrl)), { recursive: true, force: true });
  });
  beforeEach(async () => {
    root = await tempRoot();
    store = new FsObjectStore(root);
  });
  afterEach(async () => {
    const children = [...running];
    for (const child of children) child.kill();
    await Promise.all(children.map((c) => c.exited));
    await rm(root, { recursive: true, force: true });
  });

  it("lets exactly one process win a create-only race", async () => {
    const results = await race(processes, "create", root, "race/once");
    const winners = results.filter((r) => r.won);
    expect(winners).toHaveLength(1);
    expect(text((await store.get("race/once"))?.bytes)).toBe(`winner ${winners[0]?.pid}`);
  });

  it("loses no compare-and-swap increment between processes", async () => {
    const each = 50;
    const results = await race(processes, "cas", root, "race/counter", String(each));
    expect(text((await store.get("race/counter"))?.bytes)).toBe(String(processes * each));
    expect(results.reduce((sum, r) => sum + (r.conflicts ?? 0), 0)).toBeGreaterThan(0);
  });

  it("lets exactly one of many writes conditioned on the same generation win", async () => {
    const before = await store.put("race/same", "initial");
    const results = await race(processes, "same-gen", root, "race/same");
    expect(results.map((r) => r.generation)).toEqual(Array(processes).fill(before));
    const winners = results.filter((r) => r.won);
    expect(winners).toHaveLength(1);
    const after = await store.get("race/same");
    expect(after?.generation).not.toBe(before);
    expect(text(after?.bytes)).toBe(`winner ${winners[0]?.pid}`);
  });

  it.each([
    ["temp-written", "initial", "initial"],
    ["sidecar-written", "initial", "initial"],
    ["linked", "written by a process that was killed", "killed"],
  ])("stays readable and writable after a writer is killed at %s", async (point, expected, by) => {
    const before = await store.put("k", "initial", { metadata: { by: "initial" } });
    const child = new Child("die-at", root, "k", point);
    expect(await child.exited).toEqual({ code: null, signal: "SIGKILL" });
    const now = await store.get("k");
    expect(text(now?.bytes)).toBe(expected);
    // The metadata is that of the generation seen, never the killed writer's on the old bytes.
    expect(now?.metadata).toEqual({ by });
    expect(now?.generation === before).toBe(expected === "initial");
    expect((await store.list("", { withMetadata: true })).objects).toEqual([expect.objectContaining({ key: "k", metadata: { by } })]);
    const next = await store.put("k", "after", { ifGenerationMatch: now!.generation });
    expect(await store.get("k")).toEqual({ bytes: expect.anything(), generation: next, metadata: {} });
  });

  it("never shows a generation with another writer's metadata, or without its own, across processes", async () => {
    const each = 40;
    // race() starts its children before its first await: `running` is full when the readers start.
    const racing = race(processes, "cas-meta", root, "race/meta", String(each));
    let reads = 0;
    while (running.size > 0) {
      const [current, page] = await Promise.all([store.get("race/meta"), store.list("race/", { withMetadata: true })]);
      if (current) expect(current.metadata).toEqual({ n: text(current.bytes) });
      // The list gives the size, not the bytes: the value's length must still agree with it.
      const listed = page.objects?.find((o) => o.key === "race/meta");
      if (listed) expect(listed.metadata.n?.length).toBe(listed.size);
      reads++;
    }
    const results = await racing;
    expect(reads).toBeGreaterThan(0);
    expect(results.map((r) => r.mismatches)).toEqual(Array(processes).fill(0));
    expect(results.reduce((sum, r) => sum + (r.conflicts ?? 0), 0)).toBeGreaterThan(0);
    const final = await store.get("race/meta");
    expect({ text: text(final?.bytes), metadata: final?.metadata }).toEqual({ text: String(processes * each), metadata: { n: String(processes * each) } });
  });

  it("stays consistent when writers are SIGKILLed mid-loop", async () => {
    for (let round = 0; round < 3; round++) {
      const children = Array.from({ length: 4 }, () => new Child("churn", root, "chaos"));
      await Promise.all(children.map((c) => c.ready));
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
      for (const child of children) child.kill();
      await Promise.all(children.map((c) => c.exited));
    }
    const chaos = await store.get("chaos");
    const counter = Number(text(chaos?.bytes));
    expect(Number.isInteger(counter) && counter > 0).toBe(true);
    expect(chaos?.metadata).toEqual({ n: String(counter) });
    expect((await store.get("chaos-big"))?.bytes).toEqual(new Uint8Array(256 * 1024).fill(0x61));
    // Nothing was left held: a fresh round of racing processes and this one all get through.
    await race(4, "cas", root, "chaos", "10");
    expect(text((await store.get("chaos"))?.bytes)).toBe(String(counter + 40));
    const flip = await store.get("chaos-flip");
    if (flip) expect(await store.delete("chaos-flip", { ifGenerationMatch: flip.generation })).toBe(true);
    else await store.put("chaos-flip", "x", { ifGenerationMatch: 0 });
  });
});
