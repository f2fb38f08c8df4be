/** What every route module declares its routes with: answer shapes, bodies, lazy rooms. */
import type { z } from "zod";
import type { Guards } from "./context.js";
import { HttpError } from "./http-error.js";
import { ErrorSchema } from "./schemas.js";

/** A JSON answer of one schema. */
export const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { "application/json": { schema } } });

/** A JSON request body; absent or empty means `{}`. */
export const body = <S extends z.ZodType>(schema: S) => ({ required: false, content: { "application/json": { schema } } });

/** The error answers every authenticated endpoint can give. */
export const errors = {
  400: json(ErrorSchema, "Bad input: the error names the field."),
  401: json(ErrorSchema, "No credentials, or credentials that do not verify."),
  403: json(ErrorSchema, "Verified caller, not allowed."),
} as const;

export const noRun = { 404: json(ErrorSchema, "No such run.") } as const;

/** Imports a module of another room, or answers 501 when this build does not have it. */
export async function optional<T>(load: () => Promise<T>, what: string): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND") throw new HttpError(501, "not_implemented", `${what} is not part of this build`);
    throw e;
  }
}

/** A query parameter given twice is a 400 (which one would count?), named before the schema looks. */
export const singleQueryValues: Guards["api"] = async (c, next) => {
  for (const [k, v] of Object.entries(c.req.queries())) {
    if (v.length > 1) throw new HttpError(400, "invalid_argument", `query: give ${k} once`, { field: k });
  }
  await next();
};
