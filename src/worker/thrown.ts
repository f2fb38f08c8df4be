/** What job code threw or returned, turned into data the dead letter can hold. */

/** A one-line message for anything thrown: `{"code":42}`, not `[object Object]`. */
export function thrownMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === "string") return e;
  if (e === undefined) return "undefined was thrown";
  try {
    const json = JSON.stringify(e);
    if (json !== undefined) return `${json} was thrown (not an Error)`;
  } catch {
    // a cycle or a BigInt: fall through
  }
  return `${String(e)} was thrown (not an Error)`;
}

/** The first lines of a stack, without the message line it repeats. */
export function thrownStack(e: unknown, lines = 6): string | undefined {
  if (!(e instanceof Error) || !e.stack) return undefined;
  const frames = e.stack.split("\n").filter((l) => /^\s+at /.test(l));
  return frames.length ? frames.slice(0, lines).map((l) => l.trim()).join("\n") : undefined;
}

/**
 * The JSON line of an output, or the reason it has none: a function, a symbol, a BigInt or a cycle
 * in an output would be dropped or changed by JSON.stringify without a word.
 */
export function outputLine(i: number, key: string, output: unknown): { line: string } | { problem: string } {
  // One pass in the common case: the replacer only notices; the walk that names the path runs
  // when something is wrong.
  let suspicious = false;
  let line: string | undefined;
  try {
    line = JSON.stringify({ i, key, output: output ?? null }, (_k, v: unknown) => {
      const t = typeof v;
      if (t === "function" || t === "symbol" || (t === "number" && !Number.isFinite(v as number))) suspicious = true;
      return v;
    });
  } catch {
    suspicious = true; // a BigInt or a cycle
  }
  if (!suspicious && line !== undefined) return { line };
  const problem = jsonProblem(output ?? null, "output", new Set());
  if (problem) return { problem };
  return { line: line ?? JSON.stringify({ i, key, output: output ?? null }) };
}

function jsonProblem(value: unknown, path: string, seen: Set<object>): string | null {
  switch (typeof value) {
    case "function":
      return `${path} is a function`;
    case "symbol":
      return `${path} is a symbol`;
    case "bigint":
      return `${path} is a BigInt (give it as a string or a number)`;
    case "number":
      return Number.isFinite(value) ? null : `${path} is ${value} (JSON has no such number)`;
    case "object": {
      if (value === null) return null;
      if (typeof (value as { toJSON?: unknown }).toJSON === "function") return null; // Dates and the like say how
      if (seen.has(value)) return `${path} refers back to itself (a cycle)`;
      seen.add(value);
      if (Array.isArray(value)) {
        for (let k = 0; k < value.length; k++) {
          const p = jsonProblem(value[k], `${path}[${k}]`, seen);
          if (p) return p;
        }
      } else {
        for (const [k, v] of Object.entries(value)) {
          if (v === undefined) continue; // dropped by JSON, as users expect of an optional field
          const p = jsonProblem(v, `${path}.${k}`, seen);
          if (p) return p;
        }
      }
      seen.delete(value);
      return null;
    }
    default:
      return null;
  }
}
