/** Job bundles in the store: `bundles/<sha256>.mjs`, content-addressed and create-only. */
import { PreconditionFailed } from "../core/errors.js";
import type { ObjectStore } from "../store/port.js";

/** A bundle to record: its store key and bytes. */
export interface RecordedBundle {
  key: string;
  bytes: Uint8Array;
}

/** Writes a bundle create-only; one already there is the same bytes (its name is their hash). */
export async function putBundle(store: ObjectStore, bundle: RecordedBundle): Promise<void> {
  try {
    await store.put(bundle.key, bundle.bytes, { ifGenerationMatch: 0, contentType: "text/javascript" });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
  }
}
