/**
 * The rows of issue 10's table as `make bench` prints them: the figure, what it is compared with
 * (the ideal, or a bare loop), the ratio, the goal and a one-line verdict, plus the store writes
 * per item of the runs behind the row.
 */
import { fixed, table } from "./lib.js";
import type { WriteKind } from "./observe.js";

export interface Writes {
  items: number;
  total: number;
  byKind: Record<WriteKind, number>;
}

export interface Row {
  /** The measure, as issue 10 names it. */
  measure: string;
  figure: string;
  /** The ideal or the bare loop, as measured or computed in the same bench. */
  beside: string;
  ratio: string;
  goal: string;
  /** null: not judged (the run behind the row failed). */
  met: boolean | null;
  /** How the figure was taken, or why the goal is not met. */
  note: string;
  /** Store writes of the row's runs (fs store: every generation written). */
  writes?: Writes[];
}

export function verdict(r: Row): string {
  if (r.met === null) return "n/a";
  return r.met ? "MET" : "NOT MET";
}

export function printRows(log: (s: string) => void, rows: readonly Row[]): void {
  log("Issue 10's table, one run each (this machine):\n");
  log(table(["measure", "figure", "ideal / bare", "ratio", "goal", "verdict"], rows.map((r) => [r.measure, r.figure, r.beside, r.ratio, r.goal, verdict(r)])));
  log("\n");
  for (const r of rows) log(`  - ${r.measure}: ${verdict(r)}. ${r.note}\n`);
  log("\n");
}

/** Store writes per item, by kind, of every run behind the rows. */
export function printWrites(log: (s: string) => void, rows: readonly Row[]): void {
  const kinds: WriteKind[] = ["checkpoint", "part", "task record", "launch", "run.json", "plan", "index", "budget"];
  const lines: (string | number)[][] = [];
  for (const r of rows) {
    for (const w of r.writes ?? []) {
      const per = (n: number) => fixed(n / Math.max(1, w.items), 4);
      lines.push([r.measure.slice(0, 44), w.items, w.total, per(w.total), ...kinds.map((k) => per(w.byKind[k]))]);
    }
  }
  log("Store writes per item (fs store; every generation any process wrote, killed ones included):\n");
  log(table(["run", "items", "writes", "per item", ...kinds], lines));
  log("\n");
}
