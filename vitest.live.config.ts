import { defineConfig } from "vitest/config";

// `make test-live`: the live suite alone (test/live), against a real Google Cloud project.
export default defineConfig({
  test: {
    include: ["test/live/**/*.test.ts"],
    testTimeout: 15 * 60_000,
    hookTimeout: 5 * 60_000,
    fileParallelism: false,
  },
});
