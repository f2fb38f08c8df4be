/** JSON objects in the store, parsed with their schema on every read. */
import type { z } from "zod";
import { InvalidInputError, PreconditionFailed } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";
import type { Generation, ObjectStore, PutOptions } from "./port.js";

const decoder = new TextDecoder();

export interface Versioned<T> {
  value: T;
  generation: Generation;
}

export async function getJson<S extends z.ZodType>(store: ObjectStore, key: string, schema: S): Promise<Versioned<z.infer<S>> | null> {
  const obj = await store.get(key);
  if (!obj) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(obj.bytes));
  } catch (e) {
    throw new InvalidInputError(`${key} in ${store.url} is not valid JSON`, { cause: e });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new InvalidInputError(`${key} in ${store.url}: ${formatZodError(parsed.error)}`);
  return { value: parsed.data as z.infer<S>, generation: obj.generation };
}

export function putJson(store: ObjectStore, key: string, value: unknown, options: PutOptions = {}): Promise<Generation> {
  return store.put(key, JSON.stringify(value), { contentType: "application/json", ...options });
}

/**
 * Writes `value` only if `key` does not exist yet; otherwise reads what is there. Either way
 * the answer is the object that won, so every caller agrees on it.
 */
export async function createOrRead<S extends z.ZodType>(store: ObjectStore, key: string, value: z.infer<S>, schema: S): Promise<{ created: boolean; value: z.infer<S> }> {
  try {
    await putJson(store, key, value, { ifGenerationMatch: 0 });
    return { created: true, value };
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
  }
  const found = await getJson(store, key, schema);
  // Create-only objects are never deleted while anyone may race for them.
  if (!found) throw new PreconditionFailed(key, "0");
  return { created: false, value: found.value };
}

/** Lines of a JSONL object, each parsed with the schema. */
export function parseJsonl<S extends z.ZodType>(bytes: Uint8Array, schema: S, where: string): z.infer<S>[] {
  const out: z.infer<S>[] = [];
  const text = decoder.decode(bytes);
  let n = 0;
  for (const line of text.split("\n")) {
    n++;
    if (!line) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      throw new InvalidInputError(`${where} line ${n}: not valid JSON`, { cause: e });
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new InvalidInputError(`${where} line ${n}: ${formatZodError(parsed.error)}`);
    out.push(parsed.data as z.infer<S>);
  }
  return out;
}
