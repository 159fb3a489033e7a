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

import { parseArgs } from "node:util";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import process from "node:process";
import { TandemError } from "../runtime/errors.ts";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { packModel } from "../runtime/pack.ts";

const USAGE = `usage: deno task pack --model FILE.bin --split K --out DIR [--id MODEL_ID]

  --model  a llama2.c checkpoint (whole model)
  --split  K: the device shard holds layers [0, K), the edge shard [K, L)
  --out    folder to write device.safetensors, edge.safetensors and manifest.json into
  --id     model id recorded in the shards (default: the file name without extension)`;

/**
 * Runs the pack CLI on `argv`; returns the exit code.
 *
 * @example
 * ```ts
 * import { main } from "./pack.ts";
 * await main(["--model", "m.bin", "--split", "2", "--out", "out/"]);
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" },
      split: { type: "string" },
      out: { type: "string" },
      id: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help || !values.model || !values.split || !values.out) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  try {
    const split = Number(values.split);
    const bytes = new Uint8Array(await readFile(values.model));
    const model = parseLlama2c(bytes, values.model);
    const modelId = values.id ?? basename(values.model).replace(/\.[^.]*$/, "");
    const { files, manifest } = await packModel(model, { modelId, split });
    await mkdir(values.out, { recursive: true });
    for (const [name, data] of files) await writeFile(join(values.out, name), data);
    const { device, edge } = manifest.shards;
    console.log(`model ${modelId} digest ${manifest.modelDigest}`);
    console.log(`device: ${device.file} layers [${device.parts.layers}) ${device.bytes} bytes`);
    console.log(`edge:   ${edge.file} layers [${edge.parts.layers}) ${edge.bytes} bytes`);
    return 0;
  } catch (e) {
    if (e instanceof TandemError) {
      console.error(`error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
