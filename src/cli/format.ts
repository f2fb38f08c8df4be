/** Small formats for the terminal, shared by the summary and the progress bars. */
import pc from "picocolors";

/** `7s`, `1m05s`, `2h03m`; `--` for a duration not known. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "--";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export type Colors = ReturnType<typeof pc.createColors>;

/**
 * Colours for one stream: only on a terminal, never with NO_COLOR set (no-color.org: any
 * non-empty value), always with FORCE_COLOR set (and not "0").
 */
export function colorsFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Colors {
  const force = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "" && env.FORCE_COLOR !== "0";
  const enabled = !env.NO_COLOR && (force || stream.isTTY === true);
  return pc.createColors(enabled);
}

/** A run state in its colour: green done, yellow partly, red not. */
export function paintState(c: Colors, state: string): string {
  if (state === "succeeded") return c.green(state);
  if (state === "partial" || state === "budget_exhausted" || state === "cancelled") return c.yellow(state);
  if (state === "failed") return c.red(state);
  return c.cyan(state);
}
