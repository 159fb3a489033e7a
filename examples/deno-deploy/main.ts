/**
 * An edge for Deno Deploy (or any `Deno.serve` host): weights from a URL, the wasm kernels
 * for layers [K, L) and the head, sessions in the isolate's memory (a device whose session was
 * lost — a new isolate, an eviction — rebuilds it by replay, so scaling to several isolates is
 * safe, only slower on a miss).
 *
 * | variable        | meaning                                                                   |
 * | --------------- | ------------------------------------------------------------------------- |
 * | `MODEL_URL`     | the edge shard (`deno task pack` → `edge.safetensors`) or a whole llama2.c checkpoint |
 * | `TOKENIZER_URL` | optional llama2.c tokenizer, enables `POST /v1/chat/completions` (whole models only) |
 * | `MODEL_ID`      | model id (default: the shard's own)                                       |
 * | `TANDEM_API_KEYS` | comma-separated bearer keys (≥ 16 characters); unset = an open edge     |
 * | `PORT`          | port (default 8000; Deno Deploy sets its own)                             |
 *
 * ```sh
 * MODEL_URL=https://example.com/stories260K/edge.safetensors deno run -A examples/deno-deploy/main.ts
 * ```
 *
 * @module
 */

import { createEdgeApp, edgeSpecFromBytes, fetchBytes } from "../../edge/mod.ts";
import { createEngine } from "../../wasm.ts";

const modelUrl = Deno.env.get("MODEL_URL");
if (!modelUrl) {
  console.error("error: set MODEL_URL to the edge shard (or a whole llama2.c model) to serve");
  Deno.exit(2);
}
const tokenizerUrl = Deno.env.get("TOKENIZER_URL");
const spec = await edgeSpecFromBytes(await fetchBytes(modelUrl), {
  id: Deno.env.get("MODEL_ID"),
  tokenizer: tokenizerUrl ? await fetchBytes(tokenizerUrl) : undefined,
  source: modelUrl,
});
const apiKeys = Deno.env.get("TANDEM_API_KEYS")?.split(",").filter(Boolean);
const edge = await createEdgeApp({ models: [spec], engine: (m) => createEngine(m), apiKeys });

Deno.serve({
  port: Number(Deno.env.get("PORT") ?? 8000),
  hostname: Deno.env.get("HOSTNAME") ?? "127.0.0.1",
  onListen: ({ hostname, port }) =>
    console.log(`tandem edge serving ${spec.id} on http://${hostname}:${port}`),
}, edge.fetch);
