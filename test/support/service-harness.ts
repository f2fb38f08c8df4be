/** The scheduler service in-process on a free port, and a small client for its API, for tests. */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, relative } from "node:path";
import { expect } from "vitest";
import { createLogger } from "../../src/log/logger.js";
import type { Launcher } from "../../src/launcher/port.js";
import type { Authenticator } from "../../src/service/auth.js";
import { createService, type Service, type ServiceOptions } from "../../src/service/app.js";
import { FsObjectStore } from "../../src/store/fs.js";

export interface Answer {
  status: number;
  // Answers are JSON of several shapes; the assertions say which.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers;
}

export interface Started {
  base: string;
  server: Server;
  service: Service;
}

export interface ApiCallOptions {
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** null: send no Authorization header. @default the harness token */
  token?: string | null;
  /** @default the harness's main service */
  on?: Started;
}

export interface HarnessOptions {
  token: string;
  storeDir: () => string;
  launcher: () => Launcher;
  /** The service `api` talks to when not told `on`. */
  main: () => Started;
}

export function serviceHarness(o: HarnessOptions) {
  const logs: string[] = [];
  const started: Started[] = [];

  async function start(auth: Authenticator, extra: Partial<ServiceOptions> = {}): Promise<Started> {
    const logger = createLogger({ format: "json", write: (l) => logs.push(l) });
    const service = createService({ store: new FsObjectStore(o.storeDir()), launcher: o.launcher(), auth, logger, project: "test-project", ...extra });
    const server = createServer(service.handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const s = { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, service };
    started.push(s);
    return s;
  }

  async function api(method: string, path: string, c: ApiCallOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...c.headers };
    const token = c.token === undefined ? o.token : c.token;
    if (token !== null) headers.authorization ??= `Bearer ${token}`;
    let body: string | undefined = c.raw;
    if (c.body !== undefined) {
      body = JSON.stringify(c.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(`${(c.on ?? o.main()).base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    const type = res.headers.get("content-type") ?? "";
    return { status: res.status, body: type.startsWith("application/json") ? JSON.parse(text) : text, headers: res.headers };
  }

  /** Closes every service started, waiting for their work in flight. */
  async function stopAll(): Promise<void> {
    for (const s of started) {
      await new Promise<void>((resolve) => s.server.close(() => resolve()));
      await s.service.drain();
    }
  }

  /**
   * Runs `fn` and checks that the store holds the same objects, byte for byte, afterwards;
   * `ignore` leaves out paths that others may write meanwhile (the tasks of a live launch).
   */
  async function unchanged(fn: () => Promise<void>, ignore?: RegExp): Promise<void> {
    const snapshot = () => Object.fromEntries(Object.entries(storeSnapshot(o.storeDir())).filter(([path]) => !ignore?.test(path)));
    const before = snapshot();
    await fn();
    expect(snapshot()).toEqual(before);
  }

  return { logs, started, start, api, stopAll, unchanged };
}

/** Every file of a local store with a hash of its bytes (launcher state left out). */
export function storeSnapshot(storeDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      if (name === ".executions") continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(storeDir, p)] = createHash("sha256").update(readFileSync(p)).digest("hex");
    }
  };
  walk(storeDir);
  return out;
}
