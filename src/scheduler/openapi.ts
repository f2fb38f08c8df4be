/**
 * The OpenAPI 3.1 document of the scheduler service, generated from the zod schemas the server
 * parses with (api.ts). OpenAPI 3.1 schemas are JSON Schema 2020-12, zod's default target.
 */
import { z } from "zod";
import {
  DeadLetterPage,
  ErrorSchema,
  FailedItemSchema,
  FireResult,
  Health,
  OPERATIONS,
  ReconcileResult,
  RerunBody,
  RunStatusSchema,
  RunSummarySchema,
  RunsPage,
  StartRunBody,
  type Operation,
} from "./api.js";

export interface OpenApiOptions {
  /** @default "shardrun scheduler" */
  title?: string;
  /** The package version. */
  version: string;
  /** The service's URL, when known (the OIDC audience on Cloud Run). */
  serverUrl?: string;
  /** @default OPERATIONS */
  operations?: Operation[];
}

type Json = Record<string, unknown>;

// Bodies are described as clients write them (defaults optional), answers as the server
// writes them (every defaulted field present): two registries, one per direction.
const inputs = z.registry<{ id: string }>();
inputs.add(StartRunBody, { id: "StartRunRequest" });
inputs.add(RerunBody, { id: "RerunRequest" });
const outputs = z.registry<{ id: string }>();
for (const [schema, id] of [
  [RunStatusSchema, "RunStatus"],
  [RunSummarySchema, "RunSummary"],
  [RunsPage, "RunsPage"],
  [FailedItemSchema, "FailedItem"],
  [DeadLetterPage, "DeadLetterPage"],
  [FireResult, "FireResult"],
  [ReconcileResult, "ReconcileResult"],
  [Health, "Health"],
  [ErrorSchema, "Error"],
] as const) {
  outputs.add(schema, { id });
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** A JSON Schema without the document-level keys that do not belong inside OpenAPI. */
function clean(schema: Json): Json {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

function schemaFor(schema: z.ZodType, io: "input" | "output"): Json {
  const id = (io === "input" ? inputs : outputs).get(schema)?.id;
  if (id) return ref(id);
  return clean(z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Json);
}

function components(): Json {
  const out: Json = {};
  for (const [registry, io] of [
    [inputs, "input"],
    [outputs, "output"],
  ] as const) {
    const { schemas } = z.toJSONSchema(registry, { io, unrepresentable: "any", uri: (id) => ref(id).$ref }) as { schemas: Record<string, Json> };
    for (const [id, s] of Object.entries(schemas)) out[id] = clean(s);
  }
  return out;
}

function operation(op: Operation): Json {
  const parameters: Json[] = [];
  for (const [name, schema] of Object.entries(op.params ?? {})) {
    parameters.push({ name, in: "path", required: true, schema: schemaFor(schema, "input") });
  }
  for (const [name, schema] of Object.entries(op.query?.shape ?? {})) {
    const s = schema as z.ZodType;
    const json = schemaFor(s, "input");
    parameters.push({ name, in: "query", required: !s.safeParse(undefined).success, schema: json, ...(s.description ? { description: s.description } : {}) });
  }
  for (const [name, h] of Object.entries(op.headers ?? {})) {
    parameters.push({ name, in: "header", required: false, description: h.description, schema: schemaFor(h.schema, "input") });
  }
  const responses: Json = {};
  for (const [status, r] of Object.entries(op.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.schema ? { content: { "application/json": { schema: schemaFor(r.schema, "output") } } } : {}),
      ...(r.html ? { content: { "text/html": { schema: { type: "string" } } } } : {}),
    };
  }
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: false, content: { "application/json": { schema: schemaFor(op.body, "input") } } } } : {}),
    responses,
    ...(op.auth === false ? { security: [] } : {}),
  };
}

/** The whole document; cheap enough to build per request, but the server caches it. */
export function openApiDocument(options: OpenApiOptions): Json {
  const paths: Record<string, Json> = {};
  for (const op of options.operations ?? OPERATIONS) {
    (paths[op.path] ??= {})[op.method.toLowerCase()] = operation(op);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: options.title ?? "shardrun scheduler",
      version: options.version,
      description:
        "Starts, watches, continues, reruns and cancels shardrun runs. Every call but /healthz and /openapi.json needs `Authorization: Bearer <token>`: " +
        "on Cloud Run a Google-signed OIDC ID token for the service's audience from an allowed service account; locally the SHARDRUN_API_TOKEN.",
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    paths,
    components: {
      schemas: components(),
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A Google-signed OIDC ID token (Cloud Run) or the local API token." } },
    },
    security: [{ bearer: [] }],
  };
}
