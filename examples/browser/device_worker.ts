/**
 * The device half, in a Worker (the wasm thread pool spins on `Atomics`, and a forward pass
 * would freeze the page on the main thread): downloads the device shard (layers [0, K), the
 * embedding and the head) and the tokenizer, verifies the shard against its digests, runs
 * [0, K) with the wasm kernels on as many threads as the page allows, and streams the edge's
 * tokens back to the page as text with running numbers.
 *
 * Messages in: {@linkcode StartMessage}. Messages out: {@linkcode WorkerMessage}.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { createEngine } from "../../runtime/create_engine.ts";
import { createSession, type SessionStats } from "../../runtime/session.ts";
import { verifyShard } from "../../runtime/shard.ts";
import { parseShard } from "../../runtime/shard_file.ts";
import { parseLlama2cTokenizer } from "../../runtime/tokenizer/llama2c.ts";
import { StreamDecoder } from "../../runtime/tokenizer/tokenizer.ts";
import type { PackManifest } from "../../runtime/pack.ts";
import type { WireDtype } from "../../runtime/wire.ts";

/** What the page asks for. */
export interface StartMessage {
  type: "start";
  prompt: string;
  maxTokens: number;
  threads: number;
  wire: WireDtype;
}

/** What the worker reports. */
export type WorkerMessage =
  | { type: "progress"; what: string; done: number; total: number }
  | {
    type: "ready";
    engine: string;
    reason: string;
    threads: number;
    isolated: boolean;
    split: number;
    nLayers: number;
    deviceBytes: number;
    wholeBytes: number;
  }
  | { type: "token"; piece: string; stats: SessionStats; ms: number }
  | { type: "done"; stats: SessionStats; ms: number }
  | { type: "error"; message: string };

const post = (m: WorkerMessage): void => self.postMessage(m);

/** Fetches `url`, reporting bytes as they arrive. */
async function download(url: string, what: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`Cannot download ${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get("content-length") ?? 0);
  const chunks: Uint8Array[] = [];
  let done = 0;
  const reader = res.body.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    const chunk = r.value;
    chunks.push(chunk);
    done += chunk.byteLength;
    post({ type: "progress", what, done, total });
  }
  const out = new Uint8Array(done);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

async function run(m: StartMessage): Promise<void> {
  const manifest = await (await fetch("model/manifest.json")).json() as PackManifest;
  const shard = parseShard(
    await download("model/device.safetensors", "device shard"),
    "device shard",
  );
  await verifyShard(shard, "device shard");
  const tokenizer = parseLlama2cTokenizer(
    await download("model/tok512.bin", "tokenizer"),
    shard.model.config.vocabSize,
  );
  post({ type: "progress", what: "compiling wasm kernels", done: 0, total: 0 });
  const engine = await createEngine(shard.model, { threads: m.threads });
  const { config } = shard.model;
  post({
    type: "ready",
    engine: engine.name,
    reason: engine.reason,
    threads: Number(/x(\d+)$/.exec(engine.name)?.[1] ?? 1),
    isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    split: manifest.split,
    nLayers: config.nLayers,
    deviceBytes: manifest.shards.device.bytes,
    wholeBytes: manifest.shards.device.bytes + manifest.shards.edge.bytes,
  });

  const session = await createSession({
    engine,
    modelId: manifest.modelId,
    modelDigest: manifest.modelDigest,
    split: manifest.split,
    edge: new URL("/", location.href),
    wire: m.wire,
  });
  const prompt = tokenizer.encode(m.prompt);
  const stream = new StreamDecoder(tokenizer, prompt);
  const t0 = performance.now();
  for await (const id of session.generate(prompt, { maxTokens: m.maxTokens })) {
    post({
      type: "token",
      piece: stream.push(id),
      stats: session.stats,
      ms: performance.now() - t0,
    });
  }
  const tail = stream.flush();
  if (tail) post({ type: "token", piece: tail, stats: session.stats, ms: performance.now() - t0 });
  post({ type: "done", stats: session.stats, ms: performance.now() - t0 });
  await session.close();
  engine.dispose();
}

self.onmessage = (e: MessageEvent<StartMessage>) => {
  run(e.data).catch((err) => post({ type: "error", message: String(err?.message ?? err) }));
};
