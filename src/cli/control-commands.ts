/**
 * `cancel` and `watch`: stopping a run, and re-attaching to one (after Ctrl-C, from another
 * terminal, or to a run the API or a schedule started). `watch` drives the run as `run` does:
 * when a launch ends with shards open it launches a continuation, and a launch whose supervisor
 * or execution is gone is settled, so a run nobody watched is finished by watching it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ExitCode, UsageError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { RunRecord } from "../core/model.js";
import { planningStatus } from "../core/status.js";
import { startDriving } from "../orchestrator/drive.js";
import { assertRunId, readRun, readRunStatus } from "../orchestrator/read.js";
import { cancelRun } from "../orchestrator/reconcile.js";
import { cancelPlanning, findIndexEntry } from "../orchestrator/runs-index.js";
import { getJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { drive, finish } from "./commands.js";
import type { ReadFlags } from "./flags.js";
import { commandHint } from "./hints.js";
import { hintContext, launcherForRun, openCliStore, type Io } from "./io.js";

export interface ControlFlags extends ReadFlags {
  local?: boolean;
}

export async function cancelCommand(runId: string, flags: ControlFlags, io: Io): Promise<number> {
  assertRunId(runId);
  const s = await openCliStore(flags, io);
  const hints = hintContext(io, s);
  if (!(await getJson(s, keys.run(runId), RunRecord))) {
    // Not committed: a run still being planned (by the API, say) is cancelled through its index entry.
    if (!(await cancelPlanning(s, runId))) throw new UsageError(`no run ${runId} in ${s.url}`);
    const found = await findIndexEntry(s, runId);
    const e = found?.entry;
    const st = planningStatus({ runId, job: e && e.state !== "unreadable" ? e.job : "", state: "cancelled", createdAt: e?.createdAt ?? "", items: e && e.state !== "unreadable" ? e.items : 0 });
    if (flags.json) io.stdout.write(JSON.stringify(st, null, 2) + "\n");
    else io.stdout.write(`run ${runId}: cancelled while it was being planned; its planner removes what it wrote\n`);
    return ExitCode.ok;
  }
  const { launcher, local } = await launcherForRun(s, io, flags, runId, "cancel");
  const result = await cancelRun({ store: s, launcher, runId });
  const st = await readRunStatus(s, runId, launcher);
  if (flags.json) {
    io.stdout.write(JSON.stringify(st, null, 2) + "\n");
    return ExitCode.ok;
  }
  if (result.kind === "finished") {
    io.stdout.write(`run ${runId} already finished (${result.state}): nothing to cancel\n`);
    return ExitCode.ok;
  }
  io.stdout.write(
    `run ${runId}: ${result.kind === "already-cancelled" ? "was cancelled already" : "cancelled"}; its live executions were told to stop (items in flight checkpoint first)\n` +
      `  see it:    ${commandHint(hints, "watch", runId)}\n` +
      `  resume it: ${commandHint(hints, "rerun", runId, ...(local ? ["--local"] : []))}\n`,
  );
  return ExitCode.ok;
}

/**
 * Waits while the run is being planned (no run.json yet). Returns false when it was cancelled
 * while it was (its status printed), and throws when there is no such run.
 */
async function waitForPlan(s: ObjectStore, runId: string, io: Io, json: boolean): Promise<boolean> {
  let said = false;
  for (;;) {
    if (await getJson(s, keys.run(runId), RunRecord)) return true;
    const e = (await findIndexEntry(s, runId))?.entry;
    if (!e || e.state === "unreadable") throw new UsageError(`no run ${runId} in ${s.url}`);
    if (e.state === "cancelled") {
      const st = planningStatus({ runId, job: e.job, state: "cancelled", createdAt: e.createdAt, items: e.items });
      io.stdout.write(json ? JSON.stringify(st, null, 2) + "\n" : `run ${runId}: cancelled while it was being planned\n`);
      return false;
    }
    if (!said && !json) io.stderr.write(`run ${runId}: planning (${e.items} items so far)…\n`);
    said = true;
    await sleep(500);
  }
}

export async function watchCommand(runId: string, flags: ControlFlags, io: Io): Promise<number> {
  assertRunId(runId);
  const s = await openCliStore(flags, io);
  const json = flags.json === true;
  if (!(await waitForPlan(s, runId, io, json))) return ExitCode.cancelled;
  const { launcher, local } = await launcherForRun(s, io, flags, runId, "watch");
  const hints = hintContext(io, s);
  const run = await readRun(s, runId);
  // Planned but never driven (its planner went away): watching it starts it, as reconcile would.
  if (run.value.state === "planned") await startDriving(s, runId);
  const watched = await drive(s, launcher, runId, io, json, hints, { attach: true });
  return finish(s, watched, io, json, hints, local);
}
