/**
 * `deno task pack`: cut a model into the device shard and the edge shard of a split, with a
 * manifest of digests.
 *
 * ```sh
 * deno task pack --model ../shared/models/stories260K/stories260K.bin --split 2 --out packed/
 * # packed/device.safetensors  packed/edge.safetensors  packed/manifest.json
 * ```
 *
 * @module
 */

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import process from "node:process";
import { TandemError } from "../runtime/errors.ts";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { packModel } from "../runtime/pack.ts";
import { numberFlag, parseFlags } from "./_cli.ts";
import { Progress } from "./_progress.ts";

/** Flags of the pack command. */
export const PACK_FLAGS = {
  model: { type: "string", help: "a llama2.c checkpoint (whole model)" },
  split: { type: "string", help: "K: the device shard holds layers [0, K), the edge shard [K, L)" },
  out: { type: "string", help: "folder for device.safetensors, edge.safetensors, manifest.json" },
  id: { type: "string", help: "model id recorded in the shards (default: the file name)" },
} as const;

/**
 * Runs the pack CLI on `argv`; returns the exit code (2 for bad flags).
 *
 * @example
 * ```ts
 * import { main } from "./pack.ts";
 * await main(["--model", "m.bin", "--split", "2", "--out", "out/"]);
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  try {
    const values = parseFlags(
      "deno task pack",
      "Cuts a model into the device shard and the edge shard of a split, with a manifest of digests.",
      PACK_FLAGS,
      argv,
    );
    for (const name of ["model", "split", "out"] as const) {
      if (!values[name]) {
        throw new TandemError("bad_argument", `--${name} is required (see deno task pack --help)`);
      }
    }
    const split = numberFlag(values, "split", Number.isInteger, "a whole number")!;
    const path = values.model as string;
    const out = values.out as string;
    const progress = new Progress("pack", 4);
    progress.tick(`reading ${basename(path)}`);
    const bytes = new Uint8Array(await readFile(path));
    const model = parseLlama2c(bytes, path);
    const modelId = (values.id as string | undefined) ?? basename(path).replace(/\.[^.]*$/, "");
    progress.tick("digesting and cutting shards");
    const { files, manifest } = await packModel(model, { modelId, split });
    progress.tick(`writing ${out}`);
    await mkdir(out, { recursive: true });
    for (const [name, data] of files) await writeFile(join(out, name), data);
    progress.tick("done");
    progress.done();
    const { device, edge } = manifest.shards;
    console.log(`model ${modelId} digest ${manifest.modelDigest}`);
    console.log(`device: ${device.file} layers [${device.parts.layers}) ${device.bytes} bytes`);
    console.log(`edge:   ${edge.file} layers [${edge.parts.layers}) ${edge.bytes} bytes`);
    return 0;
  } catch (e) {
    if (e instanceof TandemError) {
      console.error(`error: ${e.message}`);
      return e.code === "bad_argument" ? 2 : 1;
    }
    if ((e as { code?: string }).code === "ENOENT") {
      console.error(`error: ${(e as Error).message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
