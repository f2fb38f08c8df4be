/** What every command gets and opens: its streams, the store, and a launcher. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "../core/errors.js";
import { cloudSettings, requireProjectRegion } from "../config/cloud.js";
import { ENV } from "../config/env.js";
import { LocalLauncher } from "../launcher/local.js";
import type { Launcher } from "../launcher/port.js";
import { readLaunches } from "../orchestrator/read.js";
import { openStore } from "../store/open.js";
import type { ObjectStore } from "../store/port.js";
import type { StoreFlags } from "./flags.js";
import { assertNotLive, RunLive } from "../orchestrator/control.js";
import { commandHint, type HintContext } from "./hints.js";

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  cwd: string;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** The script node runs (process.argv[1]), for the commands printed as hints. */
  script?: string;
}

/** --store, else SHARDRUN_STORE_URL, else ./.shardrun. */
export async function openCliStore(flags: StoreFlags, io: Io): Promise<ObjectStore> {
  const env = io.env ?? process.env;
  return openStore(flags.store ?? (env[ENV.defaultStore] || join(io.cwd, ".shardrun")), io.cwd);
}

/** What `commandHint` needs to write a command the way this one was typed. */
export function hintContext(io: Io, store: ObjectStore): HintContext {
  return { env: io.env ?? process.env, cwd: io.cwd, script: io.script, storeUrl: store.url };
}

export function localStateDir(s: ObjectStore, cwd: string): string {
  return s.url.startsWith("file://") ? join(fileURLToPath(s.url), ".executions") : join(cwd, ".shardrun", ".executions");
}

function cloudFlags(flags: StoreFlags): { project?: string; region?: string } {
  return { ...(flags.project !== undefined ? { project: flags.project } : {}), ...(flags.region !== undefined ? { region: flags.region } : {}) };
}

async function cloudRunLauncher(project: string, region: string): Promise<Launcher> {
  // Loaded only for cloud runs: local runs never pay for the gRPC clients.
  const [{ CloudRunLauncher }, { cloudRunClientOptions }] = await Promise.all([import("../launcher/cloud-run.js"), import("../launcher/cloud-run-endpoint.js")]);
  const clientOptions = cloudRunClientOptions();
  return new CloudRunLauncher({ project, region, ...(clientOptions ? { clientOptions } : {}) });
}

/** The launcher a command starts tasks with: local processes with --local, else Cloud Run Jobs. */
export async function launcherFor(flags: StoreFlags & { local?: boolean | undefined }, s: ObjectStore, io: Io, command: string, killGraceSeconds?: number): Promise<Launcher> {
  if (!flags.local) {
    const { project, region } = requireProjectRegion(cloudSettings(cloudFlags(flags), io.cwd, io.env ?? process.env), command);
    if (s.url.startsWith("file://")) {
      throw new UsageError(`${command}: Cloud Run tasks cannot reach a local folder store (${s.url}); give --store gs://bucket/prefix, or add --local`);
    }
    return cloudRunLauncher(project, region);
  }
  return new LocalLauncher({ stateDir: localStateDir(s, io.cwd), ...(killGraceSeconds !== undefined ? { killGraceSeconds } : {}) });
}

/**
 * A launcher to read (not start) the executions of a run, for status: Cloud Run when the run's
 * launches went there and a project and region are known, else the local state folder. Also
 * says whether the run's tasks ran here, for the hints.
 */
export async function readerFor(s: ObjectStore, io: Io, flags: StoreFlags, runId: string): Promise<{ launcher: Launcher; local: boolean }> {
  const launches = await readLaunches(s, runId);
  if (launches.some((l) => l.value.launcher === "cloud-run")) {
    const settings = cloudSettings(cloudFlags(flags), io.cwd, io.env ?? process.env);
    if (settings.project && settings.region) return { launcher: await cloudRunLauncher(settings.project, settings.region), local: false };
    return { launcher: new LocalLauncher({ stateDir: localStateDir(s, io.cwd) }), local: false };
  }
  return { launcher: new LocalLauncher({ stateDir: localStateDir(s, io.cwd) }), local: true };
}

/**
 * The launcher to drive an existing run with (`watch`): the kind its launches used, so that a
 * continuation starts where the run ran and a live launch is asked about by the launcher that
 * started it. A run in a local folder store can only run locally; `--local` forces it.
 */
export async function launcherForRun(s: ObjectStore, io: Io, flags: StoreFlags & { local?: boolean | undefined }, runId: string, command: string): Promise<{ launcher: Launcher; local: boolean }> {
  const launches = await readLaunches(s, runId);
  const last = launches[launches.length - 1]?.value.launcher;
  const local = flags.local === true || s.url.startsWith("file://") || last === "local";
  return { launcher: await launcherFor({ ...flags, local }, s, io, command), local };
}

/** assertNotLive, with its hints written as the user types the CLI. */
export async function refuseLive(s: ObjectStore, runId: string, launcher: Launcher, hints: HintContext): Promise<void> {
  try {
    await assertNotLive(s, runId, launcher);
  } catch (e) {
    if (!(e instanceof RunLive)) throw e;
    throw new UsageError(`run ${runId} has a live launch (${e.launch}): watch it (${commandHint(hints, "watch", runId)}) or cancel it (${commandHint(hints, "cancel", runId)})`);
  }
}
