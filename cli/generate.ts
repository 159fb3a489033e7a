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
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { StreamDecoder } from "../runtime/tokenizer/tokenizer.ts";
import { numberFlag, parseFlags, runCli } from "./_cli.ts";

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
} as const;

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

  const t0 = performance.now();
  const { model, tokenizer, description } = await loadModel(flags.model as string, {
    tokenizer: flags.tokenizer as string | undefined,
  });
  const engine = new RefEngine(model);
  console.error(
    `${description}; engine ${engine.name}; loaded in ${(performance.now() - t0).toFixed(0)} ms`,
  );

  const prompt = tokenizer.encode((flags.prompt as string | undefined) ?? "");
  const stream = new StreamDecoder(tokenizer, prompt);
  const t1 = performance.now();
  let n = 0;
  let firstMs = 0;
  for (const id of generate(engine, prompt, { maxTokens, temperature, topK, topP, seed })) {
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
  engine.dispose();
}

if (import.meta.main) await runCli(main);
