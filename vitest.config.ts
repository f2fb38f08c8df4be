import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The live suite talks to a real Google Cloud project: `make test-live` only.
    exclude: [...configDefaults.exclude, "test/live/**"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // e2e tests start many processes; two cores do not gain from running files side by side.
    fileParallelism: false,
  },
});
