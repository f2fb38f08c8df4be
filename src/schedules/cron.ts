/**
 * Local cron for `shardrun serve --local`: fires every schedule in its time zone, the way Cloud
 * Scheduler does in the cloud. croner computes the times; the timer here is our own, because
 * croner hands its callback the moment it woke up, and a fire must carry the *planned* time (it
 * is the idempotency key: a late wake-up must not look like another fire).
 *
 * After a long sleep (a suspended laptop) only the latest due time fires, not every missed one:
 * Cloud Scheduler does not catch up missed times either. Missed times are logged.
 */
import { Cron } from "croner";
import { errorMessage } from "../core/errors.js";
import { silentLogger, type Logger } from "../core/log.js";
import type { Launcher } from "../launcher/port.js";
import type { ObjectStore } from "../store/port.js";
import { fireSchedule, type FireResult, type FireScheduleOptions, type ScheduledRunSettings } from "./fire.js";
import { loadScheduleCatalog } from "./load.js";
import { listed, type ListedSchedule, type LoadSchedulesOptions, type LoadedSchedule } from "./schedule.js";

/**
 * The next `count` times a schedule fires after `from`, as Cloud Scheduler and the local cron
 * fire it (in its time zone); none for a paused schedule.
 */
export function nextFireTimes(s: Pick<ListedSchedule, "cron" | "timeZone" | "paused">, count: number, from: Date = new Date()): Date[] {
  if (s.paused) return [];
  return new Cron(s.cron, { mode: "5-part", timezone: s.timeZone, paused: true }).nextRuns(count, from);
}

/** Timers wake at least this often, so that a clock jump or a long wait stays accurate. */
const MAX_WAIT_MS = 30_000;

export interface LocalCronOptions extends LoadSchedulesOptions {
  store: ObjectStore;
  launcher: Launcher;
  /** @default silent */
  logger?: Logger;
  /** Already loaded schedules; otherwise loaded from `root` / `jobs`. Paused ones never fire. */
  schedules?: readonly LoadedSchedule[];
  settings?: ScheduledRunSettings;
  /** @default () => new Date() */
  now?: () => Date;
  /** @internal What a due time calls; tests replace it. @default fireSchedule */
  fire?: (options: FireScheduleOptions) => Promise<FireResult>;
}

export interface LocalCron {
  /** Stops firing; fires already started go on (see `idle`). */
  stop(): void;
  /** The schedules being fired (paused ones left out); rejects when the jobs cannot be loaded. */
  readonly ready: Promise<ListedSchedule[]>;
  /** Resolves when no fire is in flight. */
  idle(): Promise<void>;
}

/**
 * Starts firing every (unpaused) schedule at its cron times. A failed fire is logged, not thrown:
 * the next time fires anyway, and reconcile finishes what a fire left.
 * @example const cron = startLocalCron({ store, launcher, logger }); … cron.stop();
 */
export function startLocalCron(o: LocalCronOptions): LocalCron {
  const logger = o.logger ?? silentLogger;
  const now = o.now ?? (() => new Date());
  const fire = o.fire ?? fireSchedule;
  const timers = new Set<NodeJS.Timeout>();
  const inFlight = new Set<Promise<unknown>>();
  let stopped = false;

  const start = (s: LoadedSchedule, all: readonly LoadedSchedule[]) => {
    const cron = new Cron(s.cron, { mode: "5-part", timezone: s.timeZone, paused: true });
    let next = cron.nextRun(now());
    const tick = () => {
      if (stopped || !next) return;
      const t = now();
      if (t.getTime() >= next.getTime()) {
        // Late (the process slept): the latest time that is due, not the first one missed.
        let due = next;
        let skipped = 0;
        for (let n = cron.nextRun(due); n && n.getTime() <= t.getTime(); n = cron.nextRun(n), skipped++) due = n;
        if (skipped) logger.warn("local cron: times missed while not running are skipped", { schedule: s.name, skipped, firing: due.toISOString() });
        const p = fire({ store: o.store, launcher: o.launcher, logger, scheduleName: s.name, scheduledTime: due, schedules: all, ...(o.settings ? { settings: o.settings } : {}), now })
          .then(
            (r) => logger.info(r.created ? "local cron: run started" : "local cron: time already fired", { schedule: s.name, scheduledTime: due.toISOString(), runId: r.runId }),
            (e: unknown) => logger.error("local cron: fire failed", { schedule: s.name, scheduledTime: due.toISOString(), error: errorMessage(e) }),
          )
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        next = cron.nextRun(due);
        if (!next) return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        tick();
      }, Math.min(MAX_WAIT_MS, Math.max(0, next.getTime() - now().getTime())));
      timer.unref();
      timers.add(timer);
    };
    tick();
  };

  const ready = (async () => {
    const catalog = o.schedules ? { schedules: [...o.schedules], unavailable: [] } : await loadScheduleCatalog(o);
    // A job that does not build loses its own schedules only; each is named with its reason.
    for (const u of catalog.unavailable) logger.error("local cron: a job does not load; its schedules will not fire", { job: u.job, module: u.module, error: u.reason });
    const all = catalog.schedules;
    const active = all.filter((s) => !s.paused);
    if (!stopped) for (const s of active) start(s, all);
    logger.info("local cron started", { schedules: active.map((s) => `${s.name} (${s.cron} ${s.timeZone})`) });
    return active.map(listed);
  })();
  ready.catch((e: unknown) => logger.error("local cron: cannot load the schedules", { error: errorMessage(e) }));

  return {
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
    ready,
    async idle() {
      while (inFlight.size) await Promise.allSettled([...inFlight]);
    },
  };
}
