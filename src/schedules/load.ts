/**
 * Loading the schedules declared in job definitions: every job folder under `jobs/` (or the
 * jobs named), each schedule with the job it starts.
 */
import { existsSync, readdirSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { InvalidInputError } from "../core/errors.js";
import { jobVersion, loadJob, resolveJob } from "../config/jobs.js";
import { packageRoot } from "../config/paths.js";
import { runSuffix, type JobModule, type ListedSchedule, type LoadSchedulesOptions, type LoadedSchedule } from "./schedule.js";

/** Names of the job folders: `jobs/<name>/index.ts` in a checkout, `dist/jobs/<name>/index.js` in an image. */
export function jobNames(root: string = packageRoot()): string[] {
  const names = new Set<string>();
  for (const [dir, file] of [[join(root, "jobs"), "index.ts"], [join(root, "dist", "jobs"), "index.js"]] as const) {
    if (!existsSync(dir)) continue;
    for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory() && existsSync(join(dir, d.name, file))) names.add(d.name);
  }
  return [...names].sort();
}

/** Loads the jobs and returns every schedule they declare, sorted by name. */
export async function loadSchedules(options: LoadSchedulesOptions = {}): Promise<LoadedSchedule[]> {
  const root = options.root ?? packageRoot();
  const specs = options.jobs ?? jobNames(root);
  const modules: JobModule[] = [];
  for (const spec of specs) {
    const resolved = resolveJob(spec, options.cwd ?? process.cwd(), root);
    const job = await loadJob(resolved.absPath, resolved.requestedName);
    modules.push({ job, module: recordedModule(root, resolved.module), version: jobVersion(resolved.absPath) });
  }
  return collectSchedules(modules);
}

/** `resolveJob` answers relative to `root`; run.json records modules relative to the package (tasks resolve them there). */
function recordedModule(root: string, module: string): string {
  if (isAbsolute(module)) return module;
  const abs = join(root, module);
  const rel = relative(packageRoot(), abs);
  return rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
}

/**
 * The schedules of loaded jobs. Throws `InvalidInputError` when two jobs declare the same schedule
 * name, or when two schedules of one job would get the same run id suffix.
 */
export function collectSchedules(modules: readonly JobModule[]): LoadedSchedule[] {
  const byName = new Map<string, LoadedSchedule>();
  const bySuffix = new Map<string, LoadedSchedule>();
  for (const m of modules) {
    for (const s of m.job.schedules) {
      const other = byName.get(s.name);
      if (other) {
        throw new InvalidInputError(
          `schedule name "${s.name}" is declared by job "${other.job}" and job "${m.job.name}": schedule names must be unique across jobs (they name the Cloud Scheduler job and the fire endpoint)`,
        );
      }
      const entry: LoadedSchedule = { ...s, job: m.job.name, handle: m.job, module: m.module, version: m.version };
      // Two schedules of one job firing at the same second would otherwise plan the same run id.
      const suffixKey = `${m.job.name}/${runSuffix(s.name)}`;
      const twin = bySuffix.get(suffixKey);
      if (twin) throw new InvalidInputError(`schedules "${twin.name}" and "${s.name}" of job "${m.job.name}" would share run ids: rename one of them`);
      bySuffix.set(suffixKey, entry);
      byName.set(s.name, entry);
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Every schedule of every job under `<root>/jobs/`, without the loaded job. */
export async function listSchedules(root: string = packageRoot(), options: Omit<LoadSchedulesOptions, "root"> = {}): Promise<ListedSchedule[]> {
  return (await loadSchedules({ ...options, root })).map(({ handle: _h, module: _m, version: _v, ...s }) => s);
}
