/**
 * `deno task build:npm`: the npm package in `dist/npm/`, for Node (20+), bundlers and
 * browsers, built from the same sources JSR publishes.
 *
 * | output             | made by                                                            |
 * | ------------------ | ------------------------------------------------------------------ |
 * | `mod.js`, `hosts.js`, `edge.js`, `wasm.js`, `chunk-*.js` | esbuild: ESM, code shared between entries split into chunks, npm packages and `node:` modules left as imports |
 * | `types/**.d.ts`    | TypeScript's `tsc --emitDeclarationOnly` (run by Node), `.ts` import paths rewritten to `.js` |
 * | `wasm/*.wasm`      | the kernels, for hosts that import wasm as a module (workerd); every other host uses the copy embedded in the JS |
 * | `package.json`     | exports `.`, `./hosts`, `./edge`, `./wasm`, `./wasm/*`; dependencies at the versions this repo locks |
 *
 * ```sh
 * deno task build:npm            # → dist/npm/
 * deno task build:npm --out /tmp/tandem-npm --no-types
 * ```
 *
 * @module
 */

import { copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import process from "node:process";
import * as esbuild from "esbuild";
import { TandemError } from "../runtime/errors.ts";
import { parseFlags, runCli } from "./_cli.ts";
import { Progress } from "./_progress.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The package's entry points: export path → source file. */
export const NPM_ENTRIES: Record<string, string> = {
  ".": "mod.ts",
  "./hosts": "hosts/mod.ts",
  "./edge": "edge/mod.ts",
  "./wasm": "wasm.ts",
};

/** npm packages the library imports at run time (versions come from the root package.json). */
const RUNTIME_DEPENDENCIES = ["hono", "@huggingface/tokenizers"];

/** Options of {@linkcode buildNpm}. */
export interface BuildNpmOptions {
  /** Output folder (default `dist/npm` in the repo); emptied first. */
  out?: string;
  /** Emit `.d.ts` types (default true). */
  types?: boolean;
  /** Called with each step's name, for progress output. */
  onStep?: (step: string) => void;
}

/**
 * Builds the npm package; returns the output folder. Throws `bad_argument` when a step fails.
 *
 * @example
 * ```ts
 * import { buildNpm } from "./build_npm.ts";
 * const out = await buildNpm({ out: "/tmp/tandem-npm" });
 * console.log(out); // "/tmp/tandem-npm"
 * ```
 */
export async function buildNpm(options: BuildNpmOptions = {}): Promise<string> {
  const out = resolve(options.out ?? join(ROOT, "dist/npm"));
  const step = options.onStep ?? (() => {});
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });

  step("bundling with esbuild");
  await bundle(out);
  if (options.types ?? true) {
    step("emitting types with tsc");
    await emitTypes(out);
  }
  step("copying wasm kernels");
  const wasm = await copyWasm(out);
  step("writing package.json");
  await writePackageJson(out, options.types ?? true, wasm);
  return out;
}

async function bundle(out: string): Promise<void> {
  const entryPoints: Record<string, string> = {};
  for (const [path, src] of Object.entries(NPM_ENTRIES)) {
    entryPoints[path === "." ? "mod" : path.slice(2)] = join(ROOT, src);
  }
  try {
    await esbuild.build({
      entryPoints,
      outdir: out,
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      packages: "external",
      external: ["node:*"],
      sourcemap: true,
      logLevel: "silent",
    });
  } catch (e) {
    throw new TandemError("bad_argument", `Cannot bundle the npm package: ${(e as Error).message}`);
  } finally {
    await esbuild.stop();
  }
}

async function emitTypes(out: string): Promise<void> {
  const typesDir = join(out, "types");
  const tsconfig = join(out, "tsconfig.types.json");
  await writeFile(
    tsconfig,
    JSON.stringify({
      compilerOptions: {
        declaration: true,
        emitDeclarationOnly: true,
        noCheck: true, // Deno checks the sources; tsc only writes their declarations
        allowImportingTsExtensions: true,
        module: "esnext",
        moduleResolution: "bundler",
        target: "es2022",
        lib: ["es2023", "dom", "dom.iterable"],
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules/@types")],
        skipLibCheck: true,
        rootDir: ROOT,
        outDir: typesDir,
      },
      files: Object.values(NPM_ENTRIES).map((src) => join(ROOT, src)),
    }),
  );
  const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
  try {
    await promisify(execFile)("node", [tsc, "-p", tsconfig], { cwd: ROOT });
  } catch (e) {
    const { stdout, message } = e as { stdout?: string; message: string };
    throw new TandemError("bad_argument", `Cannot emit types: ${stdout || message}`);
  } finally {
    await rm(tsconfig, { force: true });
  }
  for await (const file of walk(typesDir)) {
    if (!file.endsWith(".d.ts")) continue;
    const text = await readFile(file, "utf8");
    // Relative imports keep the sources' `.ts`; the emitted files are `.d.ts` beside `.js`.
    await writeFile(file, text.replace(/(["']\.{1,2}\/[^"']*?)\.ts(["'])/g, "$1.js$2"));
  }
}

async function* walk(dir: string): AsyncGenerator<string> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) yield* walk(path);
    else yield path;
  }
}

async function copyWasm(out: string): Promise<string[]> {
  const from = join(ROOT, "kernels/wasm");
  let names: string[];
  try {
    names = (await readdir(from)).filter((n) => n.endsWith(".wasm"));
  } catch {
    return [];
  }
  await mkdir(join(out, "wasm"), { recursive: true });
  for (const n of names) await copyFile(join(from, n), join(out, "wasm", n));
  return names;
}

async function writePackageJson(out: string, types: boolean, wasm: string[]): Promise<void> {
  const deno = JSON.parse(await readFile(join(ROOT, "deno.json"), "utf8"));
  const dev = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")).devDependencies ?? {};
  const exports: Record<string, unknown> = {};
  for (const [path, src] of Object.entries(NPM_ENTRIES)) {
    const js = `./${path === "." ? "mod" : path.slice(2)}.js`;
    exports[path] = types ? { types: `./types/${src.replace(/\.ts$/, ".d.ts")}`, default: js } : js;
  }
  if (wasm.length) exports["./wasm/*"] = "./wasm/*";
  const pkg = {
    name: "tandem-llm",
    version: deno.version,
    description:
      "Split-compute LLM inference: the first K layers on the device (WebAssembly), the rest on an edge server.",
    license: deno.license,
    type: "module",
    sideEffects: false,
    engines: { node: ">=20" },
    exports,
    dependencies: Object.fromEntries(RUNTIME_DEPENDENCIES.map((d) => [d, dev[d] ?? "*"])),
  };
  await writeFile(join(out, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
  const readme = "# tandem-llm\n\nThe npm build of tandem. See the repository's README.md.\n";
  await writeFile(join(out, "README.md"), readme);
}

async function main(): Promise<void> {
  const flags = parseFlags(
    "deno task build:npm",
    "Builds the npm package (ESM + .d.ts types + wasm) into dist/npm/.",
    {
      out: { type: "string", help: "output folder", default: "dist/npm" },
      "no-types": { type: "boolean", help: "skip the .d.ts types (faster)" },
    },
    process.argv.slice(2),
  );
  const progress = new Progress("build:npm", 4);
  const out = await buildNpm({
    out: flags.out as string | undefined,
    types: !flags["no-types"],
    onStep: (s) => progress.tick(s),
  });
  progress.done(`built ${relative(process.cwd(), out) || "."}`);
}

if (import.meta.main) await runCli(main);
