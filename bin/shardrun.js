#!/usr/bin/env node
// Runs the compiled CLI: tasks and commands start often, so no TypeScript loader sits in front.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write("shardrun: not built yet; run `make build` (or `npm run build`) in the repository first\n");
  process.exit(1);
}
await import(entry.href);
