/**
 * Builds `edge/workerd/dist/` for `config.capnp`: the worker bundled by esbuild, the model
 * and tokenizer bytes it embeds, and the model id.
 *
 * ```sh
 * deno run -A edge/workerd/build.ts                      # stories260K from ../shared
 * deno run -A edge/workerd/build.ts --model packed/edge.safetensors --id stories260K --out /tmp/w
 * npx workerd serve edge/workerd/config.capnp            # (or the copy in --out)
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MODEL_DIR = fileURLToPath(new URL("../../../shared/models/stories260K/", import.meta.url));

/** Options of {@linkcode buildWorker}. */
export interface BuildOptions {
  /** Model file (default stories260K.bin from ../shared). */
  model?: string;
  /** Tokenizer file (default tok512.bin beside it). */
  tokenizer?: string;
  /** Model id (default stories260K). */
  id?: string;
  /** Folder to write config.capnp and dist/ into (default: this folder). */
  out?: string;
}

/**
 * Bundles the worker and stages its files; returns the path of the config to serve.
 *
 * @example
 * ```ts
 * import { buildWorker } from "./build.ts";
 * const config = await buildWorker({ out: "/tmp/tandem-workerd" });
 * ```
 */
export async function buildWorker(o: BuildOptions = {}): Promise<string> {
  const out = o.out ?? HERE;
  const dist = join(out, "dist");
  await mkdir(dist, { recursive: true });
  const esbuild = join(ROOT, "node_modules/.bin/esbuild");
  await promisify(execFile)(esbuild, [
    join(ROOT, "edge/hosts/workerd.ts"),
    "--bundle",
    "--format=esm",
    "--platform=neutral",
    "--main-fields=module,main",
    "--conditions=workerd,worker,browser",
    `--outfile=${join(dist, "worker.js")}`,
    "--log-level=warning",
  ], { cwd: ROOT });
  const copy = async (from: string, to: string) => await writeFile(to, await readFile(from));
  await copy(o.model ?? join(MODEL_DIR, "stories260K.bin"), join(dist, "model.bin"));
  await copy(o.tokenizer ?? join(MODEL_DIR, "tok512.bin"), join(dist, "tokenizer.bin"));
  await writeFile(join(dist, "model_id.txt"), o.id ?? "stories260K");
  if (out !== HERE) await copy(join(HERE, "config.capnp"), join(out, "config.capnp"));
  return join(out, "config.capnp");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      tokenizer: { type: "string" },
      id: { type: "string" },
      out: { type: "string" },
    },
  });
  console.log(`built ${await buildWorker(values)}`);
}
