/**
 * An item that spins (a synchronous loop that never yields) blocks the task's event loop: its
 * time limit cannot fire and no checkpoint can be written. A watchdog thread, which the blocked
 * loop cannot starve, notices the loop's heartbeat stop and ends the process, so that the next
 * attempt takes the lease over and isolates the item (protocol 9) instead of the task hanging
 * until its own timeout.
 */
import { Worker } from "node:worker_threads";

const WATCHDOG = `
const { workerData } = require("node:worker_threads");
const { writeSync } = require("node:fs");
const beat = new Int32Array(workerData.buffer);
let last = Atomics.load(beat, 0);
let still = 0;
setInterval(() => {
  const now = Atomics.load(beat, 0);
  if (now !== last) { last = now; still = 0; return; }
  still += workerData.checkMs;
  if (still >= workerData.limitMs) {
    writeSync(2, JSON.stringify({ severity: "ERROR", message: "the task's event loop has been blocked for " + still + " ms (an item spins without yielding): ending the process so that the next attempt isolates the item", "logging.googleapis.com/labels": workerData.labels }) + "\\n");
    // SIGABRT, not SIGKILL: the next attempt must count this against the item, as a crash.
    process.kill(workerData.pid, "SIGABRT");
  }
}, workerData.checkMs);
`;

export interface Watchdog {
  stop(): void;
}

/** Ends the process when its event loop is blocked for `limitMs`. */
export function startWatchdog(limitMs: number, labels: Record<string, string> = {}): Watchdog {
  const buffer = new SharedArrayBuffer(4);
  const beat = new Int32Array(buffer);
  const checkMs = Math.max(50, Math.min(1000, Math.floor(limitMs / 10)));
  const worker = new Worker(WATCHDOG, { eval: true, workerData: { buffer, limitMs, checkMs, pid: process.pid, labels } });
  worker.unref();
  const timer = setInterval(() => Atomics.add(beat, 0, 1), Math.max(10, Math.floor(checkMs / 2)));
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      void worker.terminate();
    },
  };
}
