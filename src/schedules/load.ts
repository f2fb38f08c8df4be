/**
 * Loading the schedules declared in job definitions: every job folder under `jobs/` (or the
 * jobs named), each schedule with the job it starts. Jobs are built on demand; one that does not
 * build or load hides its own schedules only.
 */
import { InvalidInputError } from "../core/errors.js";
import { jobFolderNames, prepareJobs } from "../config/jobs.js";
import { packageRoot } from "../config/paths.js";
import { listed, runSuffix, type JobModule, type ListedSchedule, type LoadSchedulesOptions, type LoadedSchedule, type ScheduleCatalog } from "./schedule.js";

/** Names of the job folders: `jobs/<name>/index.ts` in a checkout, `dist/jobs/<name>/index.js` in an image. */
export function jobNames(root: string = packageRoot()): string[] {
  return jobFolderNames(root);
}

/**
 * Builds the jobs and returns every schedule they declare, sorted by name, with the jobs that do
 * not build or load: one broken job leaves the others' schedules working.
 */
export async function loadScheduleCatalog(options: LoadSchedulesOptions = {}): Promise<ScheduleCatalog> {
  const root = options.root ?? packageRoot();
  const { prepared, unavailable } = await prepareJobs(options.jobs ?? jobNames(root), { cwd: options.cwd ?? process.cwd(), root });
  const modules = prepared.map((p) => ({ job: p.job, module: p.module, version: p.version, bundle: { key: p.key, bytes: p.bundle.bytes } }));
  return { schedules: collectSchedules(modules), unavailable };
}

/** Every schedule of the jobs that load, sorted by name (see loadScheduleCatalog for the others). */
export async function loadSchedules(options: LoadSchedulesOptions = {}): Promise<LoadedSchedule[]> {
  return (await loadScheduleCatalog(options)).schedules;
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
      const entry: LoadedSchedule = { ...s, job: m.job.name, handle: m.job, module: m.module, version: m.version, ...(m.bundle ? { bundle: m.bundle } : {}) };
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
  return (await loadSchedules({ ...options, root })).map(listed);
}
