/**
 * Finding and loading job modules. A job is named (a folder under `jobs/`) or given by path; a
 * task always loads compiled JavaScript, never TypeScript through a loader: tasks start often.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { InvalidInputError, UsageError, errorMessage, isShardrunError } from "../core/errors.js";
import { JOB_NAME_PATTERN, isJob, type Job } from "../core/job.js";
import { packageRoot, packageVersion } from "./paths.js";

export interface ResolvedJob {
  /** Compiled module, relative to the package root when inside it (as recorded in run.json). */
  module: string;
  absPath: string;
  /** The name the user asked for, when they gave a name. */
  requestedName?: string;
}

export function resolveJob(spec: string, cwd = process.cwd(), root = packageRoot()): ResolvedJob {
  const looksLikePath = spec.includes("/") || /\.(m?js|ts)$/.test(spec) || spec.startsWith(".");
  if (!looksLikePath) {
    if (!JOB_NAME_PATTERN.test(spec)) {
      throw new UsageError(`job name "${spec}" is not valid: expected lowercase letters, digits and dashes, or a path to a job module`);
    }
    const src = join(root, "jobs", spec, "index.ts");
    const compiled = join(root, "dist", "jobs", spec, "index.js");
    if (!existsSync(src) && !existsSync(compiled)) {
      throw new UsageError(`no job named "${spec}": looked for ${join(root, "jobs", spec, "index.ts")} (jobs are folders under ${join(root, "jobs")}/, or give a path to a job module)`);
    }
    if (!existsSync(compiled)) throw new UsageError(`job "${spec}" is not compiled: run \`make build\` first (looked for ${compiled})`);
    return { module: relative(root, compiled), absPath: compiled, requestedName: spec };
  }
  let abs = resolve(cwd, spec);
  if (existsSync(abs) && statSync(abs).isDirectory()) {
    const ts = join(abs, "index.ts");
    abs = existsSync(ts) ? ts : join(abs, "index.js");
  }
  if (!existsSync(abs)) throw new UsageError(`no job module at ${abs} (give a job name under ${join(root, "jobs")}/ or a path to a job module)`);
  if (abs.endsWith(".ts")) {
    const rel = relative(root, abs);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      throw new UsageError(`job module ${abs} is TypeScript outside this package: compile it to JavaScript and give the .js path`);
    }
    const compiled = join(root, "dist", rel.replace(/\.ts$/, ".js"));
    if (!existsSync(compiled)) throw new UsageError(`job module ${rel} is not compiled: run \`make build\` first (looked for ${compiled})`);
    abs = compiled;
  }
  const rel = relative(root, abs);
  return { module: rel.startsWith("..") || isAbsolute(rel) ? abs : rel, absPath: abs };
}

/** Absolute path of a module recorded in run.json. */
export function modulePath(module: string, root = packageRoot()): string {
  return isAbsolute(module) ? module : join(root, module);
}

export async function loadJob(absPath: string, requestedName?: string): Promise<Job> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(absPath).href)) as Record<string, unknown>;
  } catch (e) {
    if (isShardrunError(e, "INVALID_INPUT")) throw new InvalidInputError(`${e.message} (in ${absPath})`, { cause: e });
    throw new InvalidInputError(`cannot load job module ${absPath}: ${errorMessage(e)}`, { cause: e });
  }
  const job = mod.default ?? mod.job;
  if (!isJob(job)) {
    throw new InvalidInputError(`job module ${absPath} must \`export default defineJob({...})\``);
  }
  if (requestedName && job.name !== requestedName) {
    throw new InvalidInputError(`job folder "${requestedName}" defines a job named "${job.name}": the name must match the folder`);
  }
  return job;
}

/** Code version of a job: its compiled module's hash and the package version. */
export function jobVersion(absPath: string): string {
  const hash = createHash("sha256").update(readFileSync(absPath)).digest("hex").slice(0, 12);
  return `${packageVersion()}+${hash}`;
}
