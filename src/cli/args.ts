/** Flag parsing on node:util's parseArgs, with messages that name the flag and what it expects. */
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from "node:util";
import { UsageError, errorMessage } from "../core/errors.js";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parse(command: string, argv: string[], options: Options): Parsed {
  try {
    const { values, positionals } = nodeParseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Parsed["values"], positionals };
  } catch (e) {
    // parseArgs says e.g. "Unknown option '--foo'": keep its words, add where to look.
    throw new UsageError(`${command}: ${errorMessage(e).replace(/\. To specify.*$/s, "")} (see \`shardrun ${command} --help\`)`);
  }
}

/** A whole number flag, checked against a range; undefined when absent. */
export function intFlag(values: Parsed["values"], name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name}: expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : " up"}, got "${String(raw)}"`);
  }
  return n;
}

/** `--arg key=value` pairs; values stay strings (the job's zod schema coerces them). */
export function keyValues(values: Parsed["values"], name: string): Record<string, string> {
  const raw = values[name];
  const list = Array.isArray(raw) ? raw : typeof raw === "string" ? [raw] : [];
  const out: Record<string, string> = {};
  for (const pair of list) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${name}: expected key=value, got "${pair}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function oneRunId(command: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`${command}: expected one run id, got ${positionals.length ? positionals.join(" ") : "none"} (see \`shardrun ${command} --help\`)`);
  return positionals[0]!;
}
