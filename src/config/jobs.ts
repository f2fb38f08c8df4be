/**
 * Finding and loading jobs. A job is named (a folder under `jobs/`) or given by path (.ts or .js,
 * anywhere). Starting a run builds the job into a bundle (bundle.ts) and imports that bundle, so
 * the run plans with exactly the code its tasks will run; a task loads the bundle its run recorded.
 * Runs recorded before bundles name a compiled module instead, which is loaded as it is.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { InvalidInputError, UsageError, errorMessage, isShardrunError } from "../core/errors.js";
import { JOB_NAME_PATTERN, isJob, type Job } from "../core/job.js";
import { keys } from "../core/keys.js";
import type { RunRecord } from "../core/model.js";
import type { ObjectStore } from "../store/port.js";
import type { JobBundle } from "./bundle.js";
import { fetchBundle, importBundle } from "./bundle-cache.js";
import { packageRoot, packageVersion } from "./paths.js";

export interface ResolvedJob {
  /** The entry as run.json records it: relative to the package root when inside it, else absolute. */
  module: string;
  /** The entry's absolute path (.ts or .js). */
  absPath: string;
  /** The name the user asked for, when they gave a name. */
  requestedName?: string;
}

/**
 * The entry of a job: `jobs/<name>/index.ts` for a name (`dist/jobs/<name>/index.js` in an image,
 * which holds no job sources), or a file or folder path.
 */
export function resolveJob(spec: string, cwd = process.cwd(), root = packageRoot()): ResolvedJob {
  const looksLikePath = spec.includes("/") || /\.([cm]?[jt]s)$/.test(spec) || spec.startsWith(".");
  if (!looksLikePath) {
    if (!JOB_NAME_PATTERN.test(spec)) {
      throw new UsageError(`job name "${spec}" is not valid: expected lowercase letters, digits and dashes, or a path to a job module`);
    }
    const entry = jobEntry(root, spec);
    if (!entry) {
      throw new UsageError(`no job named "${spec}": looked for ${join(root, "jobs", spec, "index.ts")} (jobs are folders under ${join(root, "jobs")}/, or give a path to a job module)`);
    }
    return { module: recordedModule(entry), absPath: entry, requestedName: spec };
  }
  let abs = resolve(cwd, spec);
  if (existsSync(abs) && statSync(abs).isDirectory()) {
    abs = ["index.ts", "index.mts", "index.js", "index.mjs"].map((f) => join(abs, f)).find((f) => existsSync(f)) ?? join(abs, "index.ts");
  }
  if (!existsSync(abs)) throw new UsageError(`no job module at ${abs} (give a job name under ${join(root, "jobs")}/ or a path to a job module)`);
  return { module: recordedModule(abs), absPath: abs };
}

/** The entry of the job folder `name`, or null. */
function jobEntry(root: string, name: string): string | null {
  for (const f of [join(root, "jobs", name, "index.ts"), join(root, "dist", "jobs", name, "index.js")]) if (existsSync(f)) return f;
  return null;
}

/** Names of the job folders under `<root>/jobs/` (or `dist/jobs/` in an image), sorted. */
export function jobFolderNames(root: string = packageRoot()): string[] {
  const names = new Set<string>();
  for (const dir of [join(root, "jobs"), join(root, "dist", "jobs")]) {
    if (!existsSync(dir)) continue;
    for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory() && JOB_NAME_PATTERN.test(d.name) && jobEntry(root, d.name)) names.add(d.name);
  }
  return [...names].sort();
}

/** A path as run.json records it: relative to this package's root when inside it (tasks resolve it there). */
export function recordedModule(abs: string): string {
  const rel = relative(packageRoot(), abs);
  return rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
}

/** Absolute path of a module recorded in run.json. */
export function modulePath(module: string, root = packageRoot()): string {
  return isAbsolute(module) ? module : join(root, module);
}

/** A job built and loaded from its bundle, ready to plan a run with. */
export interface PreparedJob {
  job: Job;
  /** The entry, as run.json records it. */
  module: string;
  /** The bundle's version: package version + hash of the bundle. */
  version: string;
  bundle: JobBundle;
  /** The bundle's key in the store (`bundles/<sha256>.mjs`). */
  key: string;
}

/**
 * Builds the job's bundle and imports it. A job that does not build or load is an
 * `InvalidInputError` whose one-line message names the file and the first problem.
 */
export async function prepareJob(resolved: ResolvedJob, root = packageRoot()): Promise<PreparedJob> {
  const { bundleJob } = await import("./bundle.js");
  const bundle = await bundleJob(resolved.absPath, { root });
  const job = await importJob(bundle.path, resolved.module, root, resolved.requestedName);
  return { job, module: resolved.module, version: bundle.version, bundle, key: keys.bundle(bundle.sha256) };
}

async function importJob(path: string, shown: string, root: string, requestedName?: string): Promise<Job> {
  let mod: Record<string, unknown>;
  try {
    mod = await importBundle(path, root);
  } catch (e) {
    if (isShardrunError(e, "INVALID_INPUT")) throw new InvalidInputError(`${e.message} (in ${shown})`, { cause: e });
    throw new InvalidInputError(`cannot load job module ${shown}: ${errorMessage(e)}`, { cause: e });
  }
  return jobOf(mod, shown, requestedName);
}

function jobOf(mod: Record<string, unknown>, shown: string, requestedName?: string): Job {
  const job = mod.default ?? mod.job;
  if (!isJob(job)) throw new InvalidInputError(`job module ${shown} must \`export default defineJob({...})\``);
  if (requestedName && job.name !== requestedName) {
    throw new InvalidInputError(`job folder "${requestedName}" defines a job named "${job.name}": the name must match the folder`);
  }
  return job;
}

/** A job that could not be built or loaded, and why: reported on its own, never in the way of the others. */
export interface UnavailableJob {
  /** The job folder's name (or the path given). */
  job: string;
  module: string;
  reason: string;
}

/**
 * Prepares several jobs (every job folder by default). One that fails is listed in `unavailable`
 * with its reason; the others are prepared as if it were not there.
 */
export async function prepareJobs(specs?: readonly string[], o: { cwd?: string; root?: string } = {}): Promise<{ prepared: PreparedJob[]; unavailable: UnavailableJob[] }> {
  // `root` is where job folders are looked up; the bundles always build against this package.
  const root = o.root ?? packageRoot();
  specs ??= jobFolderNames(root);
  const results = await Promise.all(
    specs.map(async (spec): Promise<PreparedJob | UnavailableJob> => {
      let resolved: ResolvedJob | undefined;
      try {
        resolved = resolveJob(spec, o.cwd ?? process.cwd(), root);
        return await prepareJob(resolved);
      } catch (e) {
        if (!isShardrunError(e, "INVALID_INPUT") && !isShardrunError(e, "USAGE")) throw e;
        return { job: spec, module: resolved?.module ?? spec, reason: errorMessage(e) };
      }
    }),
  );
  return {
    prepared: results.filter((r): r is PreparedJob => "bundle" in r),
    unavailable: results.filter((r): r is UnavailableJob => "reason" in r),
  };
}

/**
 * The job a run records, for its tasks: its bundle (from this machine's cache, else fetched from
 * the store once), or, for a run recorded before bundles, its compiled module.
 */
export async function loadRunJob(store: ObjectStore, job: RunRecord["job"], root = packageRoot()): Promise<Job> {
  if (!job.bundle) return loadJob(modulePath(job.module, root));
  const loaded = await importJob(await fetchBundle(store, job.bundle), `${job.bundle} (built from ${job.module})`, root);
  if (loaded.name !== job.name) throw new InvalidInputError(`the bundle ${job.bundle} defines job "${loaded.name}", but the run is of job "${job.name}"`);
  return loaded;
}

/** Imports a module as it is: the compiled job modules of runs recorded before bundles. */
export async function loadJob(absPath: string, requestedName?: string): Promise<Job> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(absPath).href)) as Record<string, unknown>;
  } catch (e) {
    if (isShardrunError(e, "INVALID_INPUT")) throw new InvalidInputError(`${e.message} (in ${absPath})`, { cause: e });
    throw new InvalidInputError(`cannot load job module ${absPath}: ${errorMessage(e)}`, { cause: e });
  }
  return jobOf(mod, absPath, requestedName);
}

/**
 * The version runs recorded before bundles carry: the compiled module's hash and the package
 * version. Reruns of those runs compare it as they always did.
 */
export function moduleVersion(absPath: string): string {
  const hash = createHash("sha256").update(readFileSync(absPath)).digest("hex").slice(0, 12);
  return `${packageVersion()}+${hash}`;
}

/**
 * The source a recorded module was built from, to rebuild it (`rerun --upgrade`): the entry
 * itself, or for a compiled module of a run recorded before bundles (`dist/…/x.js`), its
 * TypeScript source when the checkout has it.
 */
export function sourceOf(module: string, root = packageRoot()): string {
  const abs = modulePath(module, root);
  const rel = relative(join(root, "dist"), abs);
  if (!rel.startsWith("..") && !isAbsolute(rel) && rel.endsWith(".js")) {
    const ts = join(root, rel.replace(/\.js$/, ".ts"));
    if (existsSync(ts)) return ts;
  }
  return abs;
}
