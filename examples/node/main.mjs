// tandem from Node (ESM), through the npm build: a greedy story generated twice — all on this
// machine with the reference engine, then split at layer 2 (the device layers on the wasm
// kernels) with an edge app (here in the same process, reached through an injected fetch; point `edge` at a real URL to use a remote one) — and what the split cost.
//
//   deno task build:npm && cd examples/node && npm install && node main.mjs [model.bin]
import { createSession, generate, RefEngine, StreamDecoder } from "tandem-llm";
import { loadModel } from "tandem-llm/hosts";
import { createEdgeApp } from "tandem-llm/edge";
import { createEngine } from "tandem-llm/wasm";

const path = process.argv[2] ??
  new URL("../../../shared/models/stories260K/stories260K.bin", import.meta.url)
    .pathname;
const { model, tokenizer } = await loadModel(path);
const prompt = tokenizer.encode("Once upon a time");
const maxTokens = 60;

// 1. All local.
let local = "";
const decode = new StreamDecoder(tokenizer, prompt);
for (const id of generate(new RefEngine(model), prompt, { maxTokens })) {
  local += decode.push(id);
}

// 2. Split: layers [0, 2) here on the wasm kernels (2 threads), [2, L) and the head on the edge.
const engine = await createEngine(model, { threads: 2 });
console.error(`device engine: ${engine.name} (${engine.reason})`);
const edge = await createEdgeApp({ models: [{ id: "stories260K", model }] });
const session = await createSession({
  engine,
  model, // whole here, so the session computes its weights digest (a device shard brings its own)
  modelId: "stories260K",
  split: 2,
  edge: "http://edge.invalid",
  wire: "f32",
  fetch: (url, init) => edge.fetch(new Request(url, init)),
});
let split = "";
const stream = new StreamDecoder(tokenizer, prompt);
for await (const id of session.generate(prompt, { maxTokens })) {
  const piece = stream.push(id);
  split += piece;
  process.stdout.write(piece);
}
await session.close();
engine.dispose();
edge.dispose();

const s = session.stats;
console.log(
  `\n\n${s.tokens} tokens split at layer 2; ${(s.bytesSent / s.tokens).toFixed(0)} B/token up, ` +
    `${(s.bytesReceived / s.tokens).toFixed(0)} B/token down; ` +
    `edge FLOPs ${(100 * s.edgeFlops / (s.edgeFlops + s.deviceFlops)).toFixed(0)}%`,
);
console.log(`same text as all-local: ${split === local}`);
