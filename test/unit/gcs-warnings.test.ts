/**
 * The gcs store drops one library warning (@google-cloud/storage's streamed downloads add listeners
 * to an internal PassThrough past Node's limit of ten) and passes every other warning on.
 */
import { describe, expect, it } from "vitest";
import { GcsObjectStore } from "../../src/store/gcs.js";

describe("warnings around the Cloud Storage library", () => {
  it("drops the PassThrough MaxListenersExceededWarning only", async () => {
    const seen: string[] = [];
    const spy = (w: Error) => seen.push(`${w.name}: ${w.message}`);
    process.on("warning", spy);
    try {
      new GcsObjectStore({ bucket: "bucket-one", storage: { apiEndpoint: "http://127.0.0.1:1" }, env: {} });
      const leak = Object.assign(new Error("Possible EventEmitter memory leak detected. 11 error listeners added to [PassThrough]. MaxListeners is 10."), { name: "MaxListenersExceededWarning" });
      process.emitWarning(leak);
      const other = Object.assign(new Error("Possible EventEmitter memory leak detected. 11 exit listeners added to [process]."), { name: "MaxListenersExceededWarning" });
      process.emitWarning(other);
      process.emitWarning("something else", "OtherWarning");
      await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual(["MaxListenersExceededWarning: Possible EventEmitter memory leak detected. 11 exit listeners added to [process].", "OtherWarning: something else"]);
    } finally {
      process.removeListener("warning", spy);
    }
  });
});
