import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // e2e tests start many processes; two cores do not gain from running files side by side.
    fileParallelism: false,
  },
});
