/**
 * Preloaded into every node process of a measured run (`NODE_OPTIONS=--import=…/probe.js`, see
 * observe.ts `probeEnv`): appends one line to BENCH_PROBE_FILE when the process starts (when it
 * began, from performance.timeOrigin) and one at its exit (its peak RSS). It imports nothing but
 * node:fs, so that it adds next to nothing to the start and the memory it measures. A process
 * killed by SIGKILL leaves only its start line.
 */
import { appendFileSync } from "node:fs";

const file = process.env.BENCH_PROBE_FILE;
if (file) {
  const base = {
    pid: process.pid,
    main: process.argv[1] ?? "",
    ...(process.env.CLOUD_RUN_TASK_INDEX !== undefined ? { task: process.env.CLOUD_RUN_TASK_INDEX } : {}),
    ...(process.env.CLOUD_RUN_TASK_ATTEMPT !== undefined ? { attempt: process.env.CLOUD_RUN_TASK_ATTEMPT } : {}),
    startedAt: performance.timeOrigin,
  };
  appendFileSync(file, JSON.stringify({ ev: "start", ...base }) + "\n");
  process.on("exit", () => {
    appendFileSync(file, JSON.stringify({ ev: "exit", ...base, exitAt: performance.timeOrigin + performance.now(), maxRssKb: process.resourceUsage().maxRSS }) + "\n");
  });
}
