import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { compiledLocalLauncher, launcherContract } from "./launcher-contract.js";

// The supervisor runs as its own node process, so the launcher under test is the compiled one.
let compiled: Awaited<ReturnType<typeof compiledLocalLauncher>>;
beforeAll(async () => {
  compiled = await compiledLocalLauncher();
});
afterAll(async () => {
  await compiled?.dispose();
});

launcherContract("local", async (command) => {
  const stateDir = await mkdtemp(join(tmpdir(), "shardrun-local-launcher-"));
  return {
    launcher: new compiled.LocalLauncher({ stateDir, command, killGraceSeconds: 1 }),
    unknownExecution: "shardrun-contract-zzzzz",
    cleanup: () => rm(stateDir, { recursive: true, force: true }),
  };
});
