#!/usr/bin/env node
// Prints vitest's JSON report as one plain closing line, "N passed, N failed[, N skipped]",
// so that CI logs end with a count any reader (person or tool) understands.
import { readFileSync } from "node:fs";

const path = process.argv[2] ?? "test-results/vitest.json";
let report;
try {
  report = JSON.parse(readFileSync(path, "utf8"));
} catch (e) {
  console.error(`test-summary: cannot read ${path}: ${e.message}`);
  process.exit(1);
}
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(report.numFailedTests === 0 && report.numTotalTests > 0 ? 0 : 1);
