/**
 * A zombie: attempt 0 of a task is frozen (SIGSTOP) while holding a shard, attempt 1 of the same
 * task takes the shard over and finishes it, then the zombie wakes up (SIGCONT) with items in
 * hand. Fencing must stop it: it commits nothing, and the output holds every item once.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keys } from "../../src/core/keys.js";
import { mergedOutput } from "../../src/orchestrator/output.js";
import { listAll } from "../../src/store/port.js";
import { SLEEPY, sleep, tempDir } from "./helpers.js";
import { planSingleShard, startWorker } from "./worker-harness.js";

describe("zombie attempt", () => {
  it("a stale owner that wakes up after a takeover commits nothing", async () => {
    const dir = tempDir();
    const h = await planSingleShard(SLEEPY, { count: "40", sleepMs: "100" }, join(dir, "store"));
    const { store, run, shard, readCp } = h;

    // Attempt 0 runs until it has committed some items, then freezes with more in flight.
    const zombie = startWorker(h, 0);
    for (let i = 0; i < 200; i++) {
      const cp = await readCp();
      if (cp && cp.parts.length >= 1) break;
      await sleep(50);
    }
    await sleep(300); // items are in flight and finished-but-uncommitted ones pile up
    zombie.child.kill("SIGSTOP");
    const beforeTakeover = (await readCp())!;
    expect(beforeTakeover.owner?.attempt).toBe(0);
    expect(beforeTakeover.state).toBe("open");

    // Attempt 1 of the same task takes over at once and finishes the shard.
    const successor = startWorker(h, 1);
    expect(await successor.exited).toBe(0);
    const finished = (await readCp())!;
    expect(finished.state).toBe("done");
    expect(finished.epoch).toBe(beforeTakeover.epoch + 1);

    // The zombie wakes up: its next checkpoint write fails its precondition and it stops.
    zombie.child.kill("SIGCONT");
    expect(await zombie.exited).toBe(0);
    expect(zombie.log()).toContain("lease lost");

    const after = (await readCp())!;
    expect(after).toEqual(finished);
    // The zombie's epoch committed exactly what it had committed before it froze.
    const zombieParts = after.parts.filter((p) => p.name.startsWith(String(beforeTakeover.epoch).padStart(6, "0")));
    expect(zombieParts).toEqual(beforeTakeover.parts);
    // Whatever it wrote after waking is an orphan part that no checkpoint names.
    const allParts = [];
    for await (const k of listAll(store, keys.partsPrefix(run.runId, shard))) allParts.push(k.split("/").pop()!);
    const named = new Set(after.parts.map((p) => p.name));
    const orphans = allParts.filter((p) => !named.has(p));
    for (const o of orphans) expect(o.startsWith(String(beforeTakeover.epoch).padStart(6, "0"))).toBe(true);

    const lines: string[] = [];
    for await (const l of mergedOutput(store, run.runId)) lines.push(l);
    const keysOut = lines.map((l) => (JSON.parse(l) as { key: string }).key);
    expect(keysOut).toHaveLength(40);
    expect(new Set(keysOut).size).toBe(40);
  });
});
