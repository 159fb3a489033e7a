/**
 * tandem from a Deno script: load stories260K, run layers [0, K) on this machine with the wasm
 * kernels, the rest on an edge, and stream the story. Without `--edge` an edge app runs in this
 * process (reached through an injected fetch); with it, a real edge, e.g. one started by
 * `deno run -A edge/hosts/deno.ts --model ../shared/models/stories260K/stories260K.bin --id stories260K`.
 *
 * ```sh
 * deno run -A examples/deno/main.ts [--edge http://127.0.0.1:8787] [--split 2] [--prompt "Tom had a ball"]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createSession, StreamDecoder } from "../../mod.ts";
import { loadModel } from "../../hosts/mod.ts";
import { createEdgeApp } from "../../edge/mod.ts";
import { createEngine } from "../../wasm.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "../shared/models/stories260K/stories260K.bin" },
    edge: { type: "string" },
    split: { type: "string", default: "2" },
    prompt: { type: "string", default: "Once upon a time" },
    "max-tokens": { type: "string", default: "100" },
  },
}).values;

const { model, tokenizer } = await loadModel(args.model);
const engine = await createEngine(model, { threads: 2 });
console.error(`device: ${engine.name} (${engine.reason})`);

const local = args.edge
  ? undefined
  : await createEdgeApp({ models: [{ id: "stories260K", model }] });
const session = await createSession({
  engine,
  model, // whole: the session digests it to prove to the edge which model it runs
  modelId: "stories260K",
  split: Number(args.split),
  edge: args.edge ?? "http://in-process.invalid",
  wire: "f16",
  fetch: local ? (url, init) => local.fetch(new Request(url, init)) : undefined,
});

const prompt = tokenizer.encode(args.prompt);
const stream = new StreamDecoder(tokenizer, prompt);
const out = new TextEncoder();
await Deno.stdout.write(out.encode(args.prompt));
for await (const id of session.generate(prompt, { maxTokens: Number(args["max-tokens"]) })) {
  await Deno.stdout.write(out.encode(stream.push(id)));
}
const s = session.stats;
console.log(
  `\n\n${s.tokens} tokens; device ran layers [0, ${args.split}) in ${s.deviceMs.toFixed(0)} ms, ` +
    `${(s.bytesSent / s.tokens).toFixed(0)} B/token to the edge`,
);
await session.close();
engine.dispose();
local?.dispose();
