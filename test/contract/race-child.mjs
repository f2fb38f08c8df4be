#!/usr/bin/env node
// A separate process for the fs store's race tests (store-fs.test.ts). Real processes, not
// promises, because the store's guarantees must hold between processes that share only the disk.
//
// Usage: node race-child.mjs <mode> <root> <key> [arg]
// Protocol: one JSON object per line on stdout. The child prints {"ready":true,…}, waits for a
// line on stdin so that every child starts racing at the same moment, then prints
// {"done":true,…} and exits. Modes:
//   create           create-only put of <key>; reports {won}
//   cas <n>          <n> compare-and-swap increments of the counter <key>; reports {conflicts}
//   cas-meta <n>     the same, each write also carrying the new value as metadata {n}; every read
//                    checks that the metadata matches the bytes; reports {conflicts, mismatches}
//   same-gen         reads <key>'s generation before "ready", writes conditioned on it; reports {won}
//   churn            writes forever (counter with metadata, big blob, delete/re-create) until killed
//   die-at <point>   no barrier: one conditional write with metadata {by: "killed"}, SIGKILLing
//                    itself at the store's debug point
import { createInterface } from "node:readline";

// The test passes a private copy of the compiled adapter, so that a concurrent rebuild of dist/
// cannot pull it away mid-test; run by hand, the child uses dist/ itself.
const adapter = process.env.SHARDRUN_RACE_ADAPTER ?? new URL("../../dist/src/store/fs.js", import.meta.url).href;
const { FsObjectStore } = await import(adapter);

const [mode, root, key, arg] = process.argv.slice(2);
if (!mode || !root || !key) {
  process.stderr.write("usage: race-child.mjs <mode> <root> <key> [arg]\n");
  process.exit(2);
}

const store = new FsObjectStore(root, {
  debugPoint: (point) => {
    if (mode === "die-at" && point === arg) process.kill(process.pid, "SIGKILL");
  },
});
const decoder = new TextDecoder();
const isPreconditionFailed = (error) => error?.code === "PRECONDITION_FAILED";

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function finish(message) {
  process.stdout.write(`${JSON.stringify({ done: true, ...message })}\n`, () => process.exit(0));
}

function waitForGo() {
  return new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.once("line", () => {
      lines.close();
      process.stdin.destroy();
      resolve();
    });
  });
}

let mismatches = 0;

async function increment(counterKey, withMetadata = false) {
  let conflicts = 0;
  for (;;) {
    const current = await store.get(counterKey);
    const value = current ? Number(decoder.decode(current.bytes)) : 0;
    // A generation read without its own metadata (or with another's) would be a torn write.
    if (withMetadata && current && current.metadata.n !== String(value)) mismatches++;
    try {
      const metadata = withMetadata ? { n: String(value + 1) } : undefined;
      await store.put(counterKey, String(value + 1), { ifGenerationMatch: current ? current.generation : 0, ...(metadata ? { metadata } : {}) });
      return conflicts;
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error;
      conflicts++;
    }
  }
}

async function tryPut(bytes, ifGenerationMatch) {
  try {
    await store.put(key, bytes, { ifGenerationMatch });
    return true;
  } catch (error) {
    if (isPreconditionFailed(error)) return false;
    throw error;
  }
}

switch (mode) {
  case "create": {
    send({ ready: true });
    await waitForGo();
    finish({ won: await tryPut(`winner ${process.pid}`, 0) });
    break;
  }
  case "cas": {
    send({ ready: true });
    await waitForGo();
    let conflicts = 0;
    for (let i = 0; i < Number(arg); i++) conflicts += await increment(key);
    finish({ conflicts });
    break;
  }
  case "cas-meta": {
    send({ ready: true });
    await waitForGo();
    let conflicts = 0;
    for (let i = 0; i < Number(arg); i++) conflicts += await increment(key, true);
    finish({ conflicts, mismatches });
    break;
  }
  case "same-gen": {
    const current = await store.get(key);
    const generation = current ? current.generation : "0";
    send({ ready: true, generation });
    await waitForGo();
    finish({ won: await tryPut(`winner ${process.pid}`, generation), generation });
    break;
  }
  case "churn": {
    // Runs until killed, or until the test process that holds our stdin is gone.
    process.stdin.on("end", () => process.exit(0)).resume();
    const big = new Uint8Array(256 * 1024).fill(0x61);
    for (let round = 0; ; round++) {
      await increment(key, true);
      await store.put(`${key}-big`, big);
      const flip = await store.get(`${key}-flip`);
      try {
        if (flip) await store.delete(`${key}-flip`, { ifGenerationMatch: flip.generation });
        else await store.put(`${key}-flip`, String(round), { ifGenerationMatch: 0 });
      } catch (error) {
        // Other churning processes flip the same key; losing that race is expected.
        if (!isPreconditionFailed(error)) throw error;
      }
      if (round === 0) send({ ready: true });
    }
  }
  case "die-at": {
    const current = await store.get(key);
    await store.put(key, "written by a process that was killed", {
      ifGenerationMatch: current ? current.generation : 0,
      metadata: { by: "killed" },
    });
    finish({ survived: true });
    break;
  }
  default:
    process.stderr.write(`race-child.mjs: unknown mode ${mode}\n`);
    process.exit(2);
}
