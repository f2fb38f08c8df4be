/** The scheduler's router, input parsing and OpenAPI document, without a server. */
import { describe, expect, it } from "vitest";
import { ListRunsQuery, OPERATIONS, RerunBody, StartRunBody, parseInput } from "../../src/scheduler/api.js";
import { openApiDocument } from "../../src/scheduler/openapi.js";
import { HttpError, Router } from "../../src/scheduler/router.js";

function thrown(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    return e as HttpError;
  }
  throw new Error("expected a throw");
}

describe("Router", () => {
  const router = new Router<string>()
    .add("GET", "/v1/runs", "list")
    .add("GET", "/v1/runs/{id}", "get")
    .add("POST", "/v1/runs/{id}:rerun", "rerun")
    .add("POST", "/v1/runs/{id}:cancel", "cancel")
    .add("POST", "/v1/jobs/{job}/runs", "start");

  it("matches path parameters and custom methods apart", () => {
    expect(router.match("GET", "/v1/runs/abc")).toMatchObject({ kind: "found", handler: "get", params: { id: "abc" } });
    expect(router.match("POST", "/v1/runs/abc:rerun")).toMatchObject({ kind: "found", handler: "rerun", params: { id: "abc" } });
    expect(router.match("POST", "/v1/runs/abc:cancel")).toMatchObject({ kind: "found", handler: "cancel" });
    // An unknown custom method is an unknown endpoint, not a run id with a colon in it.
    expect(router.match("POST", "/v1/runs/abc:explode")).toEqual({ kind: "not-found" });
  });

  it("keeps an encoded slash inside its parameter and decodes it after matching", () => {
    expect(router.match("GET", "/v1/runs/..%2F..%2Fetc")).toMatchObject({ kind: "found", params: { id: "../../etc" } });
    expect(router.match("GET", "/v1/runs/a/b")).toEqual({ kind: "not-found" });
  });

  it("answers 400 for a parameter that is not valid percent-encoding", () => {
    const e = thrown(() => router.match("GET", "/v1/runs/%E0%A4%A"));
    expect(e.status).toBe(400);
    expect(e.field).toBe("id");
  });

  it("lists the methods a path allows", () => {
    expect(router.match("DELETE", "/v1/runs")).toEqual({ kind: "method-not-allowed", allow: ["GET"] });
    expect(router.match("HEAD", "/v1/runs")).toMatchObject({ kind: "found", handler: "list" });
    expect(router.match("GET", "/v2/anything")).toEqual({ kind: "not-found" });
  });

  it("refuses a pattern that is not a path", () => {
    expect(() => new Router().add("GET", "v1/runs", "x")).toThrow(/starting with "\/"/);
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
    [{ args: [1, 2] }, "args"],
  ])("names the field at fault in %j", (body, field) => {
    const e = thrown(() => parseInput(StartRunBody, body, "body"));
    expect(e.status).toBe(400);
    expect(e.code).toBe("invalid_argument");
    expect(e.field).toBe(field);
    expect(e.message).toMatch(/^body: /);
  });

  it("fills defaults", () => {
    expect(parseInput(StartRunBody, {}, "body")).toMatchObject({ args: {}, taskTimeoutSeconds: 3600, maxRetries: 3, maxLaunches: 5 });
    expect(parseInput(RerunBody, {}, "body")).toEqual({ failedItems: false, upgrade: false });
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
  const doc = openApiDocument({ version: "1.2.3" }) as {
    openapi: string;
    paths: Record<string, Record<string, { operationId: string; security?: unknown[]; requestBody?: unknown; parameters?: { name: string; in: string; required: boolean }[] }>>;
    components: { schemas: Record<string, { type?: string; properties?: Record<string, { type?: string }>; additionalProperties?: unknown; required?: string[] }> };
  };

  it("is OpenAPI 3.1 and lists every operation the server routes", () => {
    expect(doc.openapi).toBe("3.1.0");
    for (const op of OPERATIONS) expect(doc.paths[op.path]?.[op.method.toLowerCase()]?.operationId).toBe(op.operationId);
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });

  it("describes bodies from the zod schemas the server parses with", () => {
    const start = doc.components.schemas.StartRunRequest!;
    expect(start.additionalProperties).toBe(false);
    expect(start.properties?.tasks?.type).toBe("integer");
    expect(start.required ?? []).not.toContain("taskTimeoutSeconds"); // has a default: optional to send
    expect(doc.paths["/v1/jobs/{job}/runs"]!.post!.requestBody).toEqual({ required: false, content: { "application/json": { schema: { $ref: "#/components/schemas/StartRunRequest" } } } });
    const status = doc.components.schemas.RunStatus!;
    expect(status.required).toEqual(expect.arrayContaining(["runId", "state", "items", "shardList"]));
  });

  it("marks the open endpoints and the parameters", () => {
    expect(doc.paths["/healthz"]!.get!.security).toEqual([]);
    expect(doc.paths["/v1/runs"]!.get!.security).toBeUndefined();
    const list = doc.paths["/v1/runs"]!.get!.parameters!;
    expect(list.map((p) => p.name)).toEqual(["job", "state", "since", "until", "pageSize", "pageToken"]);
    expect(list.every((p) => p.in === "query" && !p.required)).toBe(true);
    expect(doc.paths["/v1/runs/{id}:rerun"]!.post!.parameters).toEqual([expect.objectContaining({ name: "id", in: "path", required: true })]);
  });
});
