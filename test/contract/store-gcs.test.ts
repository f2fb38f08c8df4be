import http from "node:http";
import type net from "node:net";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GcsObjectStore, type GcsObjectStoreOptions } from "../../src/store/gcs.js";
import { listAll } from "../../src/store/port.js";
import { FaultProxy, findFakeGcs, isUpload, startFakeGcs, type FakeGcs, type FaultProxyOptions } from "./fault-proxy.js";
import { storeContract } from "./store-contract.js";

const emulator = findFakeGcs();
const fast = { minDelayMs: 5, maxDelayMs: 50 } satisfies GcsObjectStoreOptions["retry"];
const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);

if (emulator.missing && process.env.CI) {
  // CI installs the emulator (`make test` runs the install first): its absence is a failure there.
  describe("GcsObjectStore on fake-gcs-server", () => {
    it("has the emulator installed", () => {
      throw new Error(`${emulator.missing} (CI must run the gcs store tests)`);
    });
  });
} else if (emulator.missing) {
  console.warn(`skipping the gcs store tests: ${emulator.missing}`);
}

describe.skipIf(emulator.bin === undefined)("GcsObjectStore on fake-gcs-server", () => {
  let gcs: FakeGcs;
  const bucket = `shardrun-test-${randomBytes(4).toString("hex")}`;
  const open = (options: Partial<GcsObjectStoreOptions> = {}) =>
    new GcsObjectStore({ bucket, storage: { apiEndpoint: gcs.url }, retry: fast, ...options });

  beforeAll(async () => {
    gcs = await startFakeGcs(emulator.bin!);
    await gcs.createBucket(bucket);
  });
  afterAll(async () => {
    await gcs?.stop();
  });

  // A fresh, empty store per test: one bucket for the file, a new prefix per test.
  let stores = 0;
  storeContract("gcs", async () => {
    const prefix = `contract/${++stores}`;
    return { store: open({ prefix }), reopen: async () => open({ prefix }), cleanup: async () => undefined };
  });

  describe("naming", () => {
    it("opens gs:// URLs and names itself by one", () => {
      expect(GcsObjectStore.fromUrl("gs://my-bucket/runs/prod/").url).toBe("gs://my-bucket/runs/prod");
      expect(GcsObjectStore.fromUrl("gs://my-bucket").url).toBe("gs://my-bucket");
      expect(new GcsObjectStore({ bucket: "my-bucket", prefix: "a/b/" }).url).toBe("gs://my-bucket/a/b");
      for (const url of ["gs://", "s3://bucket/x", "gs:/bucket"]) {
        expect(() => GcsObjectStore.fromUrl(url), url).toThrow(expect.objectContaining({ code: "USAGE" }));
      }
      expect(() => new GcsObjectStore({ bucket: "Bad_Bucket!" })).toThrow("Expected `bucket` to be a Cloud Storage bucket name");
      expect(() => new GcsObjectStore({ bucket: "ok-bucket", prefix: "../x" })).toThrow("Expected `prefix`");
    });

    it("keeps keys relative to its prefix and out of sibling prefixes", async () => {
      const outer = open({ prefix: "nest/a" });
      const inner = open({ prefix: "nest/a/b" });
      const sibling = open({ prefix: "nest/ab" });
      await inner.put("x", "inner");
      await sibling.put("y", "sibling");
      expect(text((await outer.get("b/x"))?.bytes)).toBe("inner");
      expect(await collect(listAll(outer, ""))).toEqual(["b/x"]);
      expect(await outer.list("", { delimiter: "/" })).toEqual({ keys: [], prefixes: ["b/"] });
      const root = open();
      expect(await collect(listAll(root, "nest/"))).toEqual(["nest/a/b/x", "nest/ab/y"]);
    });

    it("returns the server's generation as its exact decimal string", async () => {
      const store = open({ prefix: "exact" });
      const generation = await store.put("g", "x");
      const response = await fetch(`${gcs.url}/storage/v1/b/${bucket}/o/${encodeURIComponent("exact/g")}`);
      const raw = await response.text();
      // Taken from the JSON text itself, so that no parsing to a number can hide a rounding.
      expect(raw).toContain(`"generation":"${generation}"`);
      expect((await store.get("g"))?.generation).toBe(generation);
    });
  });

  describe("requests", () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await FaultProxy.start({ target: gcs.url });
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it("uploads an object in one request, not resumable, with a precondition and a checksum", async () => {
      const store = open({ prefix: "requests", storage: { apiEndpoint: proxy.url } });
      const before = proxy.events.length;
      const generation = await store.put("one.json", '{"a":1}', { ifGenerationMatch: 0, contentType: "application/json" });
      await store.put("one.json", '{"a":2}', { ifGenerationMatch: generation, contentType: "application/json" });
      const uploads = proxy.events.slice(before).filter(isUpload);
      expect(uploads.map((u) => [u.query.get("uploadType"), u.query.get("ifGenerationMatch")])).toEqual([
        ["multipart", "0"],
        ["multipart", generation],
      ]);
      expect(proxy.events.slice(before)).toHaveLength(2);
      const metadata = (await (await fetch(`${gcs.url}/storage/v1/b/${bucket}/o/${encodeURIComponent("requests/one.json")}`)).json()) as Record<string, unknown>;
      expect(metadata).toMatchObject({ contentType: "application/json", md5Hash: expect.any(String) });
    });

    it("keeps its write id in the object's custom metadata, out of callers' sight", async () => {
      const store = open({ prefix: "requests", storage: { apiEndpoint: proxy.url } });
      const generation = await store.put("meta.json", "{}", { metadata: { state: "done" }, ifGenerationMatch: 0 });
      const raw = (await (await fetch(`${gcs.url}/storage/v1/b/${bucket}/o/${encodeURIComponent("requests/meta.json")}`)).json()) as { metadata?: Record<string, string> };
      expect(raw.metadata).toEqual({ state: "done", "shardrun-write": expect.stringMatching(/^[0-9a-f-]{36}$/) });
      expect(await store.get("meta.json")).toEqual({ bytes: expect.anything(), generation, metadata: { state: "done" } });
      expect((await store.list("meta", { withMetadata: true })).objects).toEqual([
        { key: "meta.json", generation, size: 2, metadata: { state: "done" }, updated: expect.any(Number) },
      ]);
    });

    it("reads metadata from the download and the list page themselves: no request per object", async () => {
      const store = open({ prefix: "cheap", storage: { apiEndpoint: proxy.url } });
      for (let i = 0; i < 25; i++) await store.put(`o/${String(i).padStart(2, "0")}`, String(i), { metadata: { i: String(i) }, ifGenerationMatch: 0 });
      const before = proxy.events.length;
      const page = await store.list("o/", { withMetadata: true });
      expect(page.objects?.map((o) => o.metadata.i)).toEqual(Array.from({ length: 25 }, (_, i) => String(i)));
      expect(proxy.events.length - before).toBe(1);
      const object = await store.get("o/07", { range: { start: 0, end: 1 } });
      expect(object).toEqual({ bytes: new TextEncoder().encode("7"), generation: page.objects![7]!.generation, metadata: { i: "7" } });
      expect(await store.get("o/13")).toMatchObject({ metadata: { i: "13" } });
      const reads = proxy.events.slice(before + 1);
      expect(reads.map((e) => [e.query.get("alt"), e.range])).toEqual([
        ["media", "bytes=0-0"],
        ["media", undefined],
      ]);
    });

    it("honours STORAGE_EMULATOR_HOST from the env it is given, with or without a scheme", async () => {
      const host = proxy.url.replace("http://", "");
      const store = new GcsObjectStore({ bucket, prefix: "env", retry: fast, env: { STORAGE_EMULATOR_HOST: host } });
      const before = proxy.events.length;
      const generation = await store.put("k", "via env", { ifGenerationMatch: 0 });
      expect(await open({ prefix: "env" }).get("k")).toEqual({ bytes: expect.anything(), generation, metadata: {} });
      expect(proxy.events.length).toBe(before + 1);
      // An explicit apiEndpoint wins over the env.
      const explicit = new GcsObjectStore({ bucket, prefix: "env", retry: fast, storage: { apiEndpoint: gcs.url }, env: { STORAGE_EMULATOR_HOST: "127.0.0.1:1" } });
      expect(text((await explicit.get("k"))?.bytes)).toBe("via env");
    });
  });

  describe("byte ranges from servers that answer oddly", () => {
    const digits = "0123456789";
    let key = 0;
    /** A store behind a proxy that plays `options`, with `digits` stored under a fresh key. */
    async function behind(options: Omit<FaultProxyOptions, "target">) {
      const odd = await FaultProxy.start({ target: gcs.url, ...options });
      const name = `k${++key}`;
      const generation = await open({ prefix: "ranges" }).put(name, digits, { ifGenerationMatch: 0, metadata: { m: "1" } });
      return { odd, name, generation, store: open({ prefix: "ranges", storage: { apiEndpoint: odd.url }, retry: { attempts: 2, minDelayMs: 1, maxDelayMs: 5 } }) };
    }

    it("cuts the range itself from a server that ignores Range and sends the whole object", async () => {
      const { odd, name, generation, store } = await behind({
        rewriteHeaders: (_r, { range: _dropped, ...headers }) => headers,
      });
      try {
        expect(await store.get(name, { range: { start: 3, end: 6 } })).toEqual({ bytes: new TextEncoder().encode("345"), generation, metadata: { m: "1" } });
        expect(odd.events.at(-1)?.upstreamStatus).toBe(200);
      } finally {
        await odd.close();
      }
    });

    it("refuses an answer whose Content-Range is not the range asked for, after retrying", async () => {
      const { odd, name, store } = await behind({
        rewriteResponse: (_r, status, headers) => ({ status, headers: headers["content-range"] ? { ...headers, "content-range": "bytes 4-6/10" } : headers }),
      });
      try {
        await expect(store.get(name, { range: { start: 3, end: 6 } })).rejects.toMatchObject({ message: expect.stringMatching(/after 2 attempts: .*ranged download answered bytes 4-6\/10 with 3 bytes for \[3, 6\)/) });
      } finally {
        await odd.close();
      }
    });
  });

  describe("limits", () => {
    it("declares Cloud Storage's documented limits", () => {
      expect(open().limits).toEqual({ objectWriteGapMs: 1000, writesPerSecond: 1000, readsPerSecond: 5000 });
    });
  });

  describe("listing", () => {
    it("leaves out folder placeholders and names it could not have written", async () => {
      const store = open({ prefix: "odd" });
      await store.put("real/key", "x");
      for (const name of ["odd/real/", "odd/has space"]) {
        const url = `${gcs.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`;
        expect((await fetch(url, { method: "POST", body: "" })).ok).toBe(true);
      }
      expect(await collect(listAll(store, ""))).toEqual(["real/key"]);
      expect(await store.list("", { delimiter: "/" })).toEqual({ keys: [], prefixes: ["real/"] });
    });

    it("rejects a page token it did not make", async () => {
      await expect(open().list("", { pageToken: "not-a-token" })).rejects.toBeInstanceOf(TypeError);
    });
  });

  describe("preconditions beyond the contract", () => {
    it("treats a delete conditioned on 0 as 'only if absent'", async () => {
      const store = open({ prefix: "zero" });
      expect(await store.delete("k", { ifGenerationMatch: "0" })).toBe(false);
      await store.put("k", "x");
      await expect(store.delete("k", { ifGenerationMatch: "0" })).rejects.toMatchObject({ code: "PRECONDITION_FAILED" });
      await expect(store.put("k", "x", { ifGenerationMatch: "12abc" })).rejects.toBeInstanceOf(TypeError);
    });
  });

  describe("errors that say how to fix them", () => {
    it("names a missing bucket and the role to grant", async () => {
      const store = open({ bucket: "no-such-bucket-here", prefix: "p" });
      const expected = expect.objectContaining({
        code: "USAGE",
        message: expect.stringMatching(/bucket "no-such-bucket-here".*roles\/storage\.objectUser/),
      });
      await expect(store.get("k")).rejects.toEqual(expected);
      await expect(store.put("k", "x", { ifGenerationMatch: 0 })).rejects.toEqual(expected);
      await expect(store.list("")).rejects.toEqual(expected);
      await expect(store.delete("k")).rejects.toEqual(expected);
    });

    it("names the bucket and the role on permission denied", async () => {
      const denied = http.createServer((_req, res) => {
        const body = { error: { code: 403, message: "caller does not have storage.objects.get access", errors: [{ reason: "forbidden" }] } };
        res.writeHead(403, { "content-type": "application/json" }).end(JSON.stringify(body));
      });
      await new Promise<void>((resolve) => denied.listen(0, "127.0.0.1", resolve));
      try {
        const port = (denied.address() as net.AddressInfo).port;
        const store = open({ bucket: "locked-bucket", storage: { apiEndpoint: `http://127.0.0.1:${port}` } });
        const expected = expect.objectContaining({
          code: "USAGE",
          message: expect.stringMatching(/permission denied.*storage\.objects\.get.*roles\/storage\.objectUser on bucket "locked-bucket"/),
        });
        await expect(store.get("k")).rejects.toEqual(expected);
        await expect(store.put("k", "x", { ifGenerationMatch: 0 })).rejects.toEqual(expected);
      } finally {
        denied.closeAllConnections();
        await new Promise((resolve) => denied.close(resolve));
      }
    });

    it("gives up on an endpoint that refuses connections after its attempts", async () => {
      const store = open({ storage: { apiEndpoint: "http://127.0.0.1:1" }, retry: { attempts: 3, minDelayMs: 1, maxDelayMs: 5 } });
      await expect(store.get("k")).rejects.toMatchObject({ code: "INTERNAL", message: expect.stringContaining("after 3 attempts") });
    });
  });
});

async function collect(items: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of items) out.push(item);
  return out;
}
