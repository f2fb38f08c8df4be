import type { z } from "zod";

/** "field.path: message; other.field: message" — the field path first, as users look for it. */
export function formatZodError(error: z.ZodError, prefix?: string): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = [...(prefix ? [prefix] : []), ...issue.path.map(String)].join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}
