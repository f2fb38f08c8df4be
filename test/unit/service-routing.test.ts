/**
 * The service's routing, input parsing and OpenAPI document, through the Hono app itself
 * (`app.request`, no socket): custom methods apart from path parameters, encoded slashes kept
 * inside their parameter, 404 and 405, the 400s that name a field, and the document generated
 * from the same route declarations. Nothing here reaches a launcher.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/core/log.js";
import type { Launcher } from "../../src/launcher/port.js";
import { tokenAuthenticator } from "../../src/service/auth.js";
import { createService } from "../../src/service/app.js";
import { HttpError } from "../../src/service/http-error.js";
import { ListRunsQuery, RerunBody, StartRunBody, parseInput } from "../../src/service/schemas.js";
import { FsObjectStore } from "../../src/store/fs.js";

const TOKEN = "routing-unit-token-0123456789";
const RUN = "20991231-000000-sleepy-0000";
const launcher: Launcher = {
  kind: "local",
  launch: async () => {
    throw new Error("no launch expected");
  },
  getExecution: async () => null,
  cancel: async () => {
    throw new Error("no cancel expected");
  },
};
const { app } = createService({ store: new FsObjectStore(join(mkdtempSync(join(tmpdir(), "shardrun-routing-")), "store")), launcher, auth: tokenAuthenticator({ token: TOKEN }), logger: silentLogger });

async function call(method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text && res.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : undefined };
}

function thrown(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    return e as HttpError;
  }
  throw new Error("expected a throw");
}

describe("routing", () => {
  it("tells path parameters and custom methods apart", async () => {
    expect((await call("GET", `/v1/runs/${RUN}`)).body.error.message).toBe(`no run ${RUN}`);
    expect((await call("POST", `/v1/runs/${RUN}:rerun`, {})).body.error.message).toBe(`no run ${RUN}`);
    expect((await call("POST", `/v1/runs/${RUN}:cancel`, {})).body.error.message).toBe(`no run ${RUN}`);
    // An unknown custom method is an unknown endpoint, not a run id with a colon in it.
    const unknown = await call("POST", `/v1/runs/${RUN}:explode`, {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain("no such endpoint");
  });

  it("keeps an encoded slash inside its parameter and decodes it after matching", async () => {
    const r = await call("GET", "/v1/runs/..%2F..%2Fetc");
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: "invalid_argument", field: "id" });
    expect(r.body.error.message).toContain('got "../../etc"');
    expect((await call("GET", "/v1/runs/a/b")).status).toBe(404);
  });

  it("answers 400 for a parameter that is not valid percent-encoding", async () => {
    const r = await call("GET", "/v1/runs/%E0%A4%A");
    expect(r.status).toBe(400);
    expect(r.body.error.field).toBe("id");
  });

  it("answers 405 with the methods a path allows, HEAD like GET, 404 elsewhere", async () => {
    const del = await call("DELETE", "/v1/runs");
    expect(del.status).toBe(405);
    expect(del.headers.get("allow")).toBe("GET");
    expect(del.body.error.code).toBe("method_not_allowed");
    expect((await call("GET", `/v1/runs/${RUN}:rerun`)).status).toBe(400); // a GET of a run whose id is not one
    const head = await call("HEAD", "/v1/runs");
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    expect((await call("GET", "/v2/anything")).body.error).toMatchObject({ code: "not_found" });
  });

  it("validates a body before the handler runs, naming the field", async () => {
    const r = await call("POST", `/v1/runs/${RUN}:rerun`, { failedItems: "yes" });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: "invalid_argument", field: "failedItems" });
  });

  it("reads an empty body as {} and refuses one that is not JSON", async () => {
    const empty = await app.request(`/v1/runs/${RUN}:cancel`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(empty.status).toBe(404); // got to the handler: no such run
    const form = await app.request(`/v1/runs/${RUN}:cancel`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" }, body: "{}" });
    expect(form.status).toBe(415);
    expect(((await form.json()) as { error: { code: string } }).error.code).toBe("unsupported_media_type");
  });
});

describe("parseInput", () => {
  it.each([
    [{ tasks: "two" }, "tasks"],
    [{ bogus: 1 }, "bogus"],
    [{ budgets: { tokens: -5 } }, "budgets.tokens"],
    [{ budgets: { dollars: 5 } }, "budgets.dollars"],
    [{ shards: 2, itemsPerShard: 3 }, "itemsPerShard"],
    [{ maxFailedItems: "lots" }, "maxFailedItems"],
    [{ maxFailedItems: "150%" }, "maxFailedItems"],
    [{ args: [1, 2] }, "args"],
  ])("names the field at fault in %j", (body, field) => {
    const e = thrown(() => parseInput(StartRunBody, body, "body"));
    expect(e.status).toBe(400);
    expect(e.code).toBe("invalid_argument");
    expect(e.field).toBe(field);
    expect(e.message).toMatch(/^body: /);
  });

  it("says what was expected and what it got", () => {
    expect(thrown(() => parseInput(StartRunBody, { tasks: -1 }, "body")).message).toBe("body: tasks: expected a whole number from 1 to 10000, got -1");
    expect(thrown(() => parseInput(StartRunBody, { maxFailedItems: "150%" }, "body")).message).toBe('body: maxFailedItems: expected a percentage of at most 100%, got "150%"');
  });

  it("fills defaults", () => {
    expect(parseInput(StartRunBody, {}, "body")).toMatchObject({ args: {}, taskTimeoutSeconds: 3600, maxRetries: 3, maxLaunches: 5 });
    expect(parseInput(RerunBody, {}, "body")).toEqual({ failedItems: false, upgrade: false, repair: false });
  });

  it("parses query numbers from text without coercing empty strings", () => {
    expect(parseInput(ListRunsQuery, { pageSize: "20" }, "query").pageSize).toBe(20);
    expect(parseInput(ListRunsQuery, {}, "query").pageSize).toBe(50);
    for (const pageSize of ["", "0", "1e3", "-1", "501"]) expect(thrown(() => parseInput(ListRunsQuery, { pageSize }, "query")).field).toBe("pageSize");
    expect(thrown(() => parseInput(ListRunsQuery, { since: "yesterday" }, "query")).field).toBe("since");
    expect(thrown(() => parseInput(ListRunsQuery, { limit: "5" }, "query")).field).toBe("limit");
  });
});

describe("OpenAPI document", () => {
  type Doc = {
    openapi: string;
    paths: Record<string, Record<string, { operationId: string; security?: unknown[]; requestBody?: unknown; parameters?: { name: string; in: string; required: boolean }[]; responses: Record<string, unknown> }>>;
    components: { schemas: Record<string, { type?: string; properties?: Record<string, { type?: string }>; additionalProperties?: unknown; required?: string[] }>; securitySchemes: Record<string, unknown> };
  };
  const doc = async () => (await (await app.request("/openapi.json")).json()) as Doc;

  it("is OpenAPI 3.1 and lists every route the app serves", async () => {
    const d = await doc();
    expect(d.openapi).toBe("3.1.0");
    const served = app.routes.filter((r) => r.method === "GET" || r.method === "POST").map((r) => [r.method.toLowerCase(), r.path.replace(/\/:(\w+)/g, "/{$1}")] as const);
    expect(new Set(served.map(([, p]) => p)).size).toBeGreaterThanOrEqual(12);
    for (const [method, path] of served) expect(d.paths[path]?.[method]?.operationId, `${method} ${path}`).toBeTypeOf("string");
    for (const path of ["/v1/jobs/{job}/runs", "/v1/runs", "/v1/runs/{id}", "/v1/runs/{id}:rerun", "/v1/runs/{id}:cancel", "/v1/runs/{id}/dead-letter", "/v1/schedules/{name}:fire", "/v1/reconcile", "/healthz", "/openapi.json", "/", "/runs/{id}"]) {
      expect(d.paths).toHaveProperty([path]);
    }
  });

  it("describes bodies from the zod schemas the routes validate with", async () => {
    const d = await doc();
    const start = d.components.schemas.StartRunRequest!;
    expect(start.additionalProperties).toBe(false);
    expect(start.properties?.tasks?.type).toBe("integer");
    expect(start.properties?.budgets).toBeDefined();
    expect(start.required ?? []).not.toContain("taskTimeoutSeconds"); // has a default: optional to send
    expect(d.paths["/v1/jobs/{job}/runs"]!.post!.requestBody).toEqual({ required: false, content: { "application/json": { schema: { $ref: "#/components/schemas/StartRunRequest" } } } });
    expect(d.components.schemas.RunStatus!.required).toEqual(expect.arrayContaining(["runId", "state", "items", "shardList"]));
    expect(d.paths["/v1/runs/{id}:rerun"]!.post!.responses).toHaveProperty("409");
  });

  it("marks the open endpoints and the parameters", async () => {
    const d = await doc();
    expect(d.paths["/healthz"]!.get!.security).toEqual([]);
    expect(d.paths["/openapi.json"]!.get!.security).toEqual([]);
    expect(d.paths["/v1/runs"]!.get!.security).toBeUndefined();
    expect(d.components.securitySchemes).toHaveProperty("bearer");
    const list = d.paths["/v1/runs"]!.get!.parameters!;
    expect(list.map((p) => p.name)).toEqual(["job", "state", "since", "until", "pageSize", "pageToken"]);
    expect(list.every((p) => p.in === "query" && !p.required)).toBe(true);
    expect(d.paths["/v1/runs/{id}:rerun"]!.post!.parameters).toEqual([expect.objectContaining({ name: "id", in: "path", required: true })]);
    expect(d.paths["/v1/schedules/{name}:fire"]!.post!.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: "header", required: false })]));
  });
});
