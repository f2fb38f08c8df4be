/**
 * Job bundles. `run`, `rerun --upgrade`, the service and schedule fires build the job they start
 * with esbuild: the job's entry and everything it imports (shardrun's own src/, zod, any other
 * package) in one self-contained ESM file. A run records that file in the store, and its tasks
 * import it, so a task anywhere (a Cloud Run container, another checkout) runs exactly the code
 * the run was planned with, and an edited job needs no `make build`.
 *
 * The bundle is built for its hash: no comments (minified whitespace: esbuild keeps comments
 * inside objects and classes otherwise), no legal comments, no absolute paths of the machine it
 * was built on. Same code, same bytes; a comment or formatting edit changes nothing.
 *
 * esbuild is imported on first build only: the commands and tasks that load a recorded bundle
 * never pay for it.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BuildOptions, Loader, Message, Plugin } from "esbuild";
import { InvalidInputError } from "../core/errors.js";
import { ROOT_PARAM, bundleCacheDir, cacheBundle, readCachedBundle } from "./bundle-cache.js";
import { buildKey, recordBuild, unchangedBuild } from "./build-cache.js";
import { packageRoot, packageVersion } from "./paths.js";

export interface JobBundle {
  /** The bundle as stored and imported. */
  bytes: Uint8Array;
  /** Where this machine's bundle folder keeps it. */
  path: string;
  /** True when no file of the last build had changed, so that build's bundle was taken and esbuild did not run. */
  reused: boolean;
  /** sha256 of `bytes`, 64 hex digits: the bundle's name in the store and in the local cache. */
  sha256: string;
  /** The job's code version: the package version and the first 12 hex digits of `sha256`. */
  version: string;
}

/** Name, in the bundle, of the function that gives a module of the package its `import.meta.url`. */
const MODULE_URL_FN = "__shardrunModuleUrl";

// First in every bundle. `require`: packages written as CommonJS call it for Node's built-ins,
// which ESM does not have. The module URL function: see ROOT_PARAM.
const BANNER = [
  `import{createRequire as __shardrunCreateRequire}from"node:module";`,
  `const require=__shardrunCreateRequire(import.meta.url);`,
  `const ${MODULE_URL_FN}=(p)=>new URL(p,new URL(import.meta.url).searchParams.get(${JSON.stringify(ROOT_PARAM)})??import.meta.url).href;`,
].join("");

export interface BundleJobOptions {
  /** The shardrun package whose modules and packages the job may import. @default the package root */
  root?: string;
  /** This machine's bundle folder, where bundles and build records are kept. @default bundleCacheDir() */
  cacheDir?: string;
}

/** Bumped whenever the build options change, so that no build recorded with other options is reused. */
const BUILD_FORMAT = "1";

/**
 * Bundles a job entry (.ts or .js, anywhere) into one ESM file, kept in this machine's bundle
 * folder. When no file the last build of this entry read has changed, that bundle is reused and
 * esbuild does not run (build-cache.ts). Throws `InvalidInputError` naming the file and esbuild's
 * first error when it does not build (a syntax error, a missing import).
 */
export async function bundleJob(entry: string, options: BundleJobOptions = {}): Promise<JobBundle> {
  const root = options.root ?? packageRoot();
  const dir = options.cacheDir ?? bundleCacheDir();
  const inside = isInside(root, entry);
  const workingDir = inside ? root : dirname(entry);
  const key = buildKey({ format: BUILD_FORMAT, entry, root, esbuild: esbuildVersion(), shardrun: packageVersion() });
  const known = await unchangedBuild(dir, key);
  const reused = known ? await readCachedBundle(known, dir) : null;
  if (reused) return { ...bundleOf(reused), path: join(dir, `${known}.mjs`), reused: true };

  const { build } = await import("esbuild");
  const startedAt = Date.now();
  let output: Uint8Array;
  let inputs: string[];
  try {
    const result = await build({
      ...COMMON,
      entryPoints: [entry],
      // Paths esbuild writes into the bundle (CommonJS module names) are relative to this: the
      // package for its own jobs, so that two checkouts build the same bytes.
      absWorkingDir: workingDir,
      // A job outside the package imports shardrun as "shardrun", and zod and the like from the
      // package's node_modules when it has none of its own.
      nodePaths: [join(root, "node_modules")],
      alias: { shardrun: shardrunEntry(root) },
      banner: { js: BANNER },
      plugins: [fileUrlImports(), moduleUrls(root, inside ? undefined : dirname(entry))],
      metafile: true,
    });
    const file = result.outputFiles?.[0];
    if (!file) throw new Error("esbuild wrote no output");
    output = file.contents;
    inputs = Object.keys(result.metafile.inputs).map((f) => resolve(workingDir, f));
  } catch (e) {
    throw new InvalidInputError(buildFailure(e, root, entry, workingDir), { cause: e });
  }
  const bundle = bundleOf(output);
  const path = await cacheBundle(bundle.sha256, bundle.bytes, dir);
  await recordBuild(dir, key, bundle.sha256, inputs, startedAt, inside ? root : undefined);
  return { ...bundle, path, reused: false };
}

let esbuildVersionCache: string | undefined;

/** esbuild's version, read without loading esbuild. */
function esbuildVersion(): string {
  return (esbuildVersionCache ??= (JSON.parse(readFileSync(createRequire(import.meta.url).resolve("esbuild/package.json"), "utf8")) as { version: string }).version);
}

/** The hash of some bundle bytes and the version it makes. */
export function bundleOf(bytes: Uint8Array): Omit<JobBundle, "path" | "reused"> {
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return { bytes, sha256, version: `${packageVersion()}+${sha256.slice(0, 12)}` };
}

const COMMON = {
  bundle: true,
  write: false,
  platform: "node",
  target: "node24",
  format: "esm",
  legalComments: "none",
  minifyWhitespace: true,
  logLevel: "silent",
} as const satisfies BuildOptions;

/**
 * The worker bundled (`<outdir>/worker.mjs`), for task cold start: one module to read and compile
 * instead of a few hundred. What the worker imports only when asked for (the Cloud Storage
 * adapter) stays in a chunk of its own beside it, loaded on demand, so a task on a local store
 * never loads the Google client. Packages that load files of their own at run time (the Google
 * clients' protos, pino's transports) or carry native code stay in node_modules.
 */
export async function bundleWorker(outdir: string, root: string = packageRoot()): Promise<void> {
  const { build } = await import("esbuild");
  await build({
    ...COMMON,
    entryPoints: { worker: join(root, "src", "worker", "main.ts") },
    outdir,
    outExtension: { ".js": ".mjs" },
    splitting: true,
    chunkNames: "worker-chunks/[name]-[hash]",
    write: true,
    absWorkingDir: root,
    external: WORKER_EXTERNAL,
    banner: { js: BANNER },
  });
}

const WORKER_EXTERNAL = ["@google-cloud/*", "google-gax", "google-auth-library", "@grpc/*", "@node-rs/*", "pino", "pino-*", "thread-stream", "esbuild"];

/** `shardrun` as a job imports it: the sources in a checkout, the compiled package in an image. */
function shardrunEntry(root: string): string {
  const source = join(root, "src", "index.ts");
  return existsSync(source) ? source : join(root, "dist", "src", "index.js");
}

/** `import … from "file:///…/dist/src/index.js"`, as Node takes it. */
function fileUrlImports(): Plugin {
  return {
    name: "shardrun-file-urls",
    setup(b) {
      b.onResolve({ filter: /^file:\/\// }, (args) => ({ path: fileURLToPath(args.path) }));
    },
  };
}

/**
 * Gives every module of the package (and of the job's own folder, for a job outside it) its own
 * `import.meta.url`, which a bundle would otherwise replace with the bundle's: jobs find their data
 * files and the package (summarize-docs its documents) through it. Inside the package it is the
 * module's path relative to the package, resolved where the task runs (see ROOT_PARAM), so the
 * bundle holds no path of the machine that built it. Packages under node_modules keep the
 * bundle's URL, as they would in any bundle.
 */
function moduleUrls(root: string, outsideDir: string | undefined): Plugin {
  return {
    name: "shardrun-module-urls",
    setup(b) {
      const dirs = [root, ...(outsideDir ? [outsideDir] : [])];
      const filter = new RegExp(`^(?:${dirs.map((d) => escapeRegExp(d + sep)).join("|")}).*\\.[cm]?[jt]sx?$`);
      b.onLoad({ filter }, async (args) => {
        if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
        const text = await readFile(args.path, "utf8");
        if (!text.includes("import.meta.url")) return undefined;
        const rel = relative(root, args.path);
        const url = isInside(root, args.path) ? `${MODULE_URL_FN}(${JSON.stringify(rel.split(sep).join("/"))})` : JSON.stringify(pathToFileURL(args.path).href);
        return { contents: text.replace(/\bimport\.meta\.url\b/g, url), loader: loaderOf(args.path), resolveDir: dirname(args.path) };
      });
    },
  };
}

function loaderOf(path: string): Loader {
  const ext = extname(path);
  if (ext === ".tsx" || ext === ".jsx") return ext.slice(1) as Loader;
  return /^\.[cm]?ts$/.test(ext) ? "ts" : "js";
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

/** A path as people read it: relative to the package when inside it. */
function displayPath(root: string, path: string): string {
  return isInside(root, path) ? relative(root, path) : path;
}

/**
 * esbuild's first error on one line, where it is (`file:line:column`) and how many more there are:
 * `job jobs/x/index.ts:4:12 does not build: Expected ")" but found "item"`.
 */
function buildFailure(e: unknown, root: string, entry: string, workingDir: string): string {
  const errors = (e as { errors?: Message[] } | null)?.errors;
  const first = errors?.[0];
  const shown = displayPath(root, entry);
  if (!first) return `job ${shown} does not build: ${e instanceof Error ? e.message.split("\n")[0]! : String(e)}`;
  const text = first.text.replace(/\s*\n\s*/g, " ");
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? "s" : ""})` : "";
  const loc = first.location;
  if (!loc) return `job ${shown} does not build: ${text}${more}`;
  const file = displayPath(root, join(workingDir, loc.file));
  const at = `${loc.line}:${loc.column + 1}`;
  return file === shown ? `job ${shown}:${at} does not build: ${text}${more}` : `job ${shown} does not build: ${file}:${at}: ${text}${more}`;
}
