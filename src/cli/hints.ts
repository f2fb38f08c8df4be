/**
 * Commands printed for people to run next ("outputs: …", "failed: …", the Ctrl-C line) must run
 * as printed: written the way the user invoked shardrun, with `--store` when the store is not
 * the one a bare command would open. Every hint goes through `commandHint`.
 */
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ENV } from "../config/env.js";
import { shellQuote } from "../core/shell.js";

export interface HintContext {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The script node runs (process.argv[1]): bin/shardrun.js, when run by path. */
  script?: string | undefined;
  /** The store's URL (`file:///…` or `gs://…`). */
  storeUrl: string;
}

const quote = shellQuote;

function onPath(env: NodeJS.ProcessEnv, name: string): boolean {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/**
 * How to invoke shardrun again, as the user did: `npx shardrun` under npx or an npm script (npm
 * sets npm_command / npm_lifecycle_event), `shardrun` when it is on PATH, else the script by its
 * path (`./bin/shardrun.js`, or `node bin/shardrun.js` when it is not executable).
 */
export function cliPrefix(c: Pick<HintContext, "env" | "cwd" | "script">): string {
  const { env } = c;
  if (env.npm_command === "exec" || env.npm_lifecycle_event === "npx" || env.npm_command === "run-script") return "npx shardrun";
  if (onPath(env, "shardrun")) return "shardrun";
  const script = c.script ? resolve(c.cwd, c.script) : undefined;
  if (!script || !existsSync(script)) return "shardrun";
  const rel = relative(c.cwd, script);
  const shown = rel.startsWith("..") || isAbsolute(rel) ? script : `./${rel}`;
  try {
    accessSync(script, constants.X_OK);
    return quote(shown);
  } catch {
    return `node ${quote(shown.replace(/^\.\//, ""))}`;
  }
}

/** `--store X` when a bare command would open another store; "" when it would open this one. */
export function storeFlag(c: Pick<HintContext, "env" | "cwd" | "storeUrl">): string {
  const defaultUrl = c.env[ENV.defaultStore] || join(c.cwd, ".shardrun");
  const asUrl = (s: string) => (s.startsWith("gs://") || s.startsWith("file://") ? s.replace(/\/+$/, "") : `file://${resolve(c.cwd, s)}`);
  if (asUrl(c.storeUrl) === asUrl(defaultUrl)) return "";
  if (!c.storeUrl.startsWith("file://")) return ` --store ${quote(c.storeUrl)}`;
  const path = fileURLToPath(c.storeUrl);
  const rel = relative(c.cwd, path);
  return ` --store ${quote(rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path)}`;
}

/**
 * A shardrun command line to print, e.g. `commandHint(ctx, "output", runId)` ->
 * `npx shardrun output 20261122-… --store /tmp/s`.
 */
export function commandHint(c: HintContext, ...args: string[]): string {
  return `${cliPrefix(c)} ${args.map(quote).join(" ")}${storeFlag(c)}`;
}
