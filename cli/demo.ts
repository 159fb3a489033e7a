/**
 * `deno task demo`: routed inference end to end. Starts an edge on loopback; the device holds
 * layers [0, 4) of stories260K and the head; the router decides local / split / cloud (with
 * self-speculative drafting), the story streams, then the decisions with their reasons and the
 * cost: cloud FLOPs saved vs all-cloud, tokens per round trip, bytes per token.
 * `--split K` runs a fixed split instead (the earlier demo).
 *
 * ```sh
 * deno task demo                       # routed
 * deno task demo --split 4 --wire f32 --prompt "Tom had a red ball" --max-tokens 120
 * deno task demo --edge http://127.0.0.1:8787   # an edge you started yourself
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { TandemError } from "../runtime/errors.ts";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import type { WireDtype } from "../runtime/wire.ts";
import { WIRE_DTYPES } from "../runtime/wire.ts";
import { formatSplitReport, runSplitGeneration } from "../edge/run_split.ts";
import { formatRoutedReport, runRoutedGeneration } from "../edge/run_routed.ts";
import { Progress } from "./_progress.ts";

const DEFAULT_MODEL = new URL("../../shared/models/stories260K/", import.meta.url);

const USAGE = `usage: deno task demo [--model DIR] [--split K] [--wire f32|f16|int8] [--prompt TEXT]
                      [--max-tokens N] [--edge URL]

  --model       folder holding stories260K.bin and tok512.bin (default ../shared/models/stories260K)
  (default)     routed: the router picks local / split / cloud; f16 prompt rows, f32 decode
  --split       K: a fixed split instead, layers [0, K) here, [K, L) on the edge
  --wire        activation encoding on the wire with --split (default int8)
  --edge        use this edge instead of starting one on loopback`;

/**
 * Runs the demo on `argv`; returns the exit code.
 *
 * @example
 * ```ts
 * import { main } from "./demo.ts";
 * await main(["--split", "3", "--max-tokens", "40"]);
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        split: { type: "string" },
        wire: { type: "string", default: "int8" },
        prompt: { type: "string", default: "" },
        "max-tokens": { type: "string", default: "200" },
        edge: { type: "string" },
        help: { type: "boolean" },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message} (see deno task demo --help)`);
    return 2;
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const wire = values.wire as WireDtype;
  if (!WIRE_DTYPES.includes(wire)) {
    console.error(`error: --wire must be one of ${WIRE_DTYPES.join(", ")}\n\n${USAGE}`);
    return 2;
  }
  const dir = values.model
    ? new URL(values.model.replace(/\/?$/, "/"), `file://${process.cwd()}/`)
    : DEFAULT_MODEL;
  // Progress on stderr while the weights load and the edge starts; cleared at the first token.
  const progress = new Progress("demo", 3);
  let streaming = false;
  try {
    progress.tick("reading the weights");
    const model = parseLlama2c(
      new Uint8Array(await readFile(new URL("stories260K.bin", dir))),
      "stories260K.bin",
    );
    progress.tick("reading the tokenizer");
    const tokenizer = parseLlama2cTokenizer(
      new Uint8Array(await readFile(new URL("tok512.bin", dir))),
      model.config.vocabSize,
    );
    const encoder = new TextEncoder();
    progress.tick(
      values.edge
        ? `opening a session on ${values.edge}`
        : "digesting the weights, starting an edge on loopback",
    );
    const onText = (piece: string) => {
      if (!streaming) {
        streaming = true;
        progress.done();
        if (values.prompt) process.stdout.write(encoder.encode(values.prompt));
      }
      process.stdout.write(encoder.encode(piece));
    };
    if (values.split === undefined) {
      const routed = await runRoutedGeneration({
        model,
        tokenizer,
        prompt: values.prompt,
        edge: values.edge,
        maxTokens: Number(values["max-tokens"]),
        onText,
      });
      console.log("\n\n" + formatRoutedReport(routed));
      return 0;
    }
    const report = await runSplitGeneration({
      model,
      tokenizer,
      modelId: values.edge ? undefined : "stories260K",
      prompt: values.prompt,
      split: Number(values.split),
      edge: values.edge,
      wire,
      maxTokens: Number(values["max-tokens"]),
      onText,
    });
    console.log("\n\n" + formatSplitReport(report));
    return 0;
  } catch (e) {
    progress.done();
    if (e instanceof TandemError || (e as { code?: string }).code === "ENOENT") {
      console.error(`error: ${(e as Error).message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
