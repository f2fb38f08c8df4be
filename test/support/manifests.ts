/**
 * What tests read from manifests/: the scheduler service's settings as manifests/service.yaml
 * deploys them. The file is a small Knative Service; these readers know its shape (one
 * container, `- name:`/`value:` env pairs) rather than pulling in a YAML parser.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../e2e/helpers.js";

export interface ServiceManifest {
  /** spec.template.spec.timeoutSeconds: Cloud Run's request timeout. */
  timeoutSeconds: number;
  /** The container's plain env, placeholders as written. */
  env: Record<string, string>;
  /** Annotations on the Service's own metadata (not the revision template's). */
  annotations: Record<string, string>;
}

export function readServiceManifest(path = join(ROOT, "manifests", "service.yaml")): ServiceManifest {
  const text = readFileSync(path, "utf8").replace(/#.*$/gm, "");
  const timeout = /^\s+timeoutSeconds:\s*(\d+)\s*$/m.exec(text);
  if (!timeout) throw new Error(`${path}: no spec.template.spec.timeoutSeconds`);
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^\s*- name:\s*(\S+)\s*\n\s+value:\s*"?([^"\n]*)"?\s*$/gm)) env[m[1]!] = m[2]!.trim();
  // The Service's metadata ends where its spec begins; the revision's annotations come later.
  const head = text.slice(0, text.search(/^spec:/m));
  const annotations: Record<string, string> = {};
  const block = /^ {2}annotations:\s*\n((?: {4}\S.*\n?)+)/m.exec(head);
  for (const line of block?.[1]?.split("\n") ?? []) {
    const m = /^\s+([^:\s]+):\s*"?([^"]*)"?\s*$/.exec(line);
    if (m) annotations[m[1]!] = m[2]!;
  }
  return { timeoutSeconds: Number(timeout[1]), env, annotations };
}
