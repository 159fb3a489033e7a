/**
 * `deno task generate`: stream generated text from a model to stdout; diagnostics go to stderr.
 *
 * ```sh
 * deno task generate --model ../shared/models/stories260K/stories260K.bin --prompt "Once upon a time" --max-tokens 100
 * ```
 *
 * @module
 */

import process from "node:process";
import { loadModel } from "../hosts/load.ts";
import { createEngine } from "../runtime/create_engine.ts";
import { TandemError } from "../runtime/errors.ts";
import { generate } from "../runtime/generate.ts";
import type { Model } from "../runtime/model.ts";
import { StreamDecoder, type Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
import type { EngineQuant } from "../runtime/wasm_engine.ts";
import { WIRE_DTYPES } from "../runtime/wire.ts";
import { formatSplitReport, runSplitGeneration } from "../edge/run_split.ts";
import { numberFlag, parseFlags, runCli } from "./_cli.ts";

const QUANTS: readonly EngineQuant[] = ["f32", "q8", "q4"];

/** Flags of the generate command. */
export const GENERATE_FLAGS = {
  model: { type: "string", help: "model: llama2.c .bin, HF folder, URL, or hf:owner/repo" },
  tokenizer: { type: "string", help: "tokenizer file (default: the one beside the model)" },
  prompt: { type: "string", help: "prompt text; empty starts from BOS", default: '""' },
  "max-tokens": { type: "string", help: "most tokens to generate", default: "256" },
  temperature: { type: "string", help: "sampling temperature; 0 is greedy", default: "0" },
  "top-k": { type: "string", help: "keep the k most likely tokens (0 = off)", default: "0" },
  "top-p": { type: "string", help: "nucleus sampling mass (1 = off)", default: "1" },
  seed: { type: "string", help: "random seed", default: "1" },
  quant: { type: "string", help: "weight precision: f32, q8 or q4", default: "f32" },
  threads: { type: "string", help: "threads of the wasm engine, caller included", default: "1" },
  split: { type: "string", help: "split at layer K: [0, K) here, [K, L) + head on an edge" },
  edge: { type: "string", help: "edge URL for --split (default: start one on loopback)" },
  wire: {
    type: "string",
    help: "activations on the wire for --split: f32, f16 or int8",
    default: "f32",
  },
} as const;

/** Reads a flag that must be one of `choices`. */
function choiceFlag<T extends string>(
  flags: Record<string, string | boolean | undefined>,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const v = (flags[name] as string | undefined) ?? fallback;
  if (!choices.includes(v as T)) {
    throw new TandemError(
      "bad_argument",
      `--${name} must be one of ${choices.join(", ")}, got "${v}"`,
    );
  }
  return v as T;
}

async function main(): Promise<void> {
  const flags = parseFlags(
    "deno task generate",
    "Generates text with a model, streaming it to stdout.",
    GENERATE_FLAGS,
    process.argv.slice(2),
  );
  const maxTokens =
    numberFlag(flags, "max-tokens", (x) => Number.isInteger(x) && x >= 0, "a whole number") ?? 256;
  const temperature = numberFlag(flags, "temperature", (x) => x >= 0, "a number >= 0") ?? 0;
  const topK = numberFlag(flags, "top-k", (x) => Number.isInteger(x) && x >= 0, "a whole number") ??
    0;
  const topP = numberFlag(flags, "top-p", (x) => x > 0 && x <= 1, "a number in (0, 1]") ?? 1;
  const seed = numberFlag(flags, "seed", Number.isInteger, "an integer") ?? 1;

  const quant = choiceFlag(flags, "quant", QUANTS, "f32");
  const wire = choiceFlag(flags, "wire", WIRE_DTYPES, "f32");
  const threads = numberFlag(
    flags,
    "threads",
    (x) => Number.isInteger(x) && x >= 1 && x <= 64,
    "a whole number from 1 to 64",
  ) ?? 1;
  const split = numberFlag(flags, "split", (x) => Number.isInteger(x) && x >= 0, "a whole number");
  if (split === undefined && (flags.edge !== undefined || flags.wire !== undefined)) {
    throw new TandemError("bad_argument", "--edge and --wire need --split K");
  }
  const sampling = { temperature, topK, topP, seed };
  const prompt = (flags.prompt as string | undefined) ?? "";

  const t0 = performance.now();
  const { model, tokenizer, description } = await loadModel(flags.model as string, {
    tokenizer: flags.tokenizer as string | undefined,
  });
  const loadMs = performance.now() - t0;
  if (split !== undefined) {
    const L = model.config.nLayers;
    if (split < 1 || split >= L) {
      throw new TandemError(
        "bad_argument",
        `--split must be between 1 and ${L - 1} for this ${L}-layer model, got ${split}`,
      );
    }
    const engine = await createEngine(model, { quant, threads });
    console.error(
      `${description}; device engine ${engine.name} (${engine.reason}); loaded in ${
        loadMs.toFixed(0)
      } ms`,
    );
    try {
      const report = await runSplitGeneration({
        model,
        tokenizer,
        prompt,
        split,
        wire,
        maxTokens,
        sampling,
        engine,
        edge: flags.edge as string | undefined,
        edgeEngine: (m: Model) => createEngine(m, { quant, threads: 1 }),
        onText: (t) => process.stdout.write(t),
      });
      process.stdout.write("\n");
      console.error(formatSplitReport(report));
    } finally {
      engine.dispose();
    }
    return;
  }
  const engine = await createEngine(model, { quant, threads });
  console.error(
    `${description}; engine ${engine.name} (${engine.reason}); loaded in ${loadMs.toFixed(0)} ms`,
  );
  try {
    generateLocally(engine, tokenizer, tokenizer.encode(prompt), { maxTokens, ...sampling });
  } finally {
    engine.dispose();
  }
}

/** Streams a local generation to stdout and reports speed on stderr. */
function generateLocally(
  engine: Awaited<ReturnType<typeof createEngine>>,
  tokenizer: Tokenizer,
  prompt: number[],
  options: Parameters<typeof generate>[2],
): void {
  const stream = new StreamDecoder(tokenizer, prompt);
  const t1 = performance.now();
  let n = 0;
  let firstMs = 0;
  for (const id of generate(engine, prompt, options)) {
    if (n++ === 0) firstMs = performance.now() - t1;
    const text = stream.push(id);
    if (text) process.stdout.write(text);
  }
  process.stdout.write(stream.flush() + "\n");
  const ms = performance.now() - t1;
  console.error(
    `${n} tokens in ${ms.toFixed(0)} ms (${(n / (ms / 1000)).toFixed(1)} tok/s; first token after ${
      firstMs.toFixed(0)
    } ms; prompt ${prompt.length} tokens)`,
  );
}

if (import.meta.main) await runCli(main);
