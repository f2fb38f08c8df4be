#!/usr/bin/env node
// Runs the compiled CLI: tasks and commands start often, so no TypeScript loader sits in front.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import module from "node:module";
import { fileURLToPath } from "node:url";

// The project pins its own Node.js (node_modules/.bin/node, from package.json). `npx shardrun`
// and `make` find it on PATH; a bare `node bin/shardrun.js` on an older machine node hands over
// to it, so that commands, tasks and tests all run on the one runtime the project is tested on.
const pinned = fileURLToPath(new URL("../node_modules/.bin/node", import.meta.url));
if (Number(process.versions.node.split(".")[0]) < 24 && existsSync(pinned) && !process.env.SHARDRUN_NODE_HANDOFF) {
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, SHARDRUN_NODE_HANDOFF: "1" },
  });
  process.exit(r.status ?? (r.signal ? 128 + 15 : 1));
}

// Node's module compile cache (in the OS temp folder, unless NODE_COMPILE_CACHE says where):
// every start after the first reads compiled code instead of parsing each module again.
if (!process.env.NODE_DISABLE_COMPILE_CACHE) module.enableCompileCache?.();

const entry = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write("shardrun: not built yet; run `make build` (or `npm run build`) in the repository first\n");
  process.exit(1);
}
await import(entry.href);
