/**
 * `deno task bench engine [--quick]`: end-to-end prefill and decode tokens/s of a seeded
 * synthetic SmolLM2-135M-shaped model (dim 576, 30 layers, 9 heads / 3 KV heads, FFN 1536,
 * vocab 49152, tied embeddings) on the wasm engine in f32 / q8 / q4 with 1 and 2 threads,
 * against the TypeScript reference engine in the same run, with each engine's wasm memory.
 *
 * Beside each wasm engine's decode rate: the weight bytes one decode token streams
 * (`WasmEngine.decodeBytes`) and the bandwidth bound, bytes per token over the native read
 * bandwidth for the same thread count (bench/_native_probe.ts, 4 KiB pages like wasm,
 * measured at the start and at the end, the better kept). Decode is measured in 3 rounds of
 * `steps` tokens; the table shows the median round. The machine is shared: the load average
 * is printed.
 *
 * @module
 */

import { RefEngine } from "../runtime/forward.ts";
import type { Engine } from "../runtime/engine.ts";
import { expectedShapes, type Model, type ModelConfig } from "../runtime/model.ts";
import { type EngineQuant, WasmEngine } from "../runtime/wasm_engine.ts";
import { bestOf, nativeProbe } from "./_native_probe.ts";
import { markdownTable, updateReadme } from "./_readme.ts";
import { fmt, median, printTable, writeResults } from "./_results.ts";

/** SmolLM2-135M's shape. */
export const SMOLLM2_135M: ModelConfig = {
  dim: 576,
  hiddenDim: 1536,
  nLayers: 30,
  nHeads: 9,
  nKvHeads: 3,
  headDim: 64,
  vocabSize: 49152,
  maxSeqLen: 2048,
  normEps: 1e-5,
  ropeTheta: 100000,
  tiedEmbeddings: true,
  qkvBias: false,
  bosId: 1,
  eosIds: [2],
};

/** A model of `config`'s shape with seeded random weights (norms 1, matrices ±0.05). */
export function syntheticModel(config: ModelConfig, seed = 1): Model {
  const parts = { layers: [0, config.nLayers] as [number, number], embed: true, head: true };
  const tensors = new Map();
  let s = seed >>> 0;
  for (const [name, shape] of expectedShapes(config, parts)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) data.fill(1);
    else {for (let i = 0; i < data.length; i++) {
        data[i] = ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.1;
      }}
    tensors.set(name, { shape, data });
  }
  return { config, parts, tensors };
}

/**
 * Prefill `prompt` tokens then decode `rounds` × `steps` tokens; returns tokens/s of the
 * prefill and of each decode round.
 */
function measure(
  e: Engine,
  prompt: number,
  steps: number,
  rounds = 1,
): { prefill: number; decode: number; rounds: number[] } {
  const L = e.config.nLayers;
  const cache = e.createCache();
  const tokens = Array.from({ length: prompt }, (_, i) => (i * 7919) % e.config.vocabSize);
  let t0 = performance.now();
  let h = e.forward(cache, e.embed(tokens), 0, 0, L);
  e.head(h.subarray(h.length - e.config.dim));
  const prefill = prompt / ((performance.now() - t0) / 1000);
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const pos = prompt + r * steps + i;
      h = e.forward(cache, e.embed([(pos * 31) % e.config.vocabSize]), pos, 0, L);
      e.head(h);
    }
    out.push(steps / ((performance.now() - t0) / 1000));
  }
  return { prefill, decode: median(out), rounds: out };
}

/** Runs the bench; prints the table, writes results/engine.json and the README section. */
export async function run(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const [prompt, steps] = quick ? [32, 8] : [128, 32];
  const load0 = Deno.loadavg();
  const probe = await nativeProbe();
  const native0 = await probe?.measure();
  const model = syntheticModel(SMOLLM2_135M);
  const rows: Record<string, unknown>[] = [];
  const ref = new RefEngine(model);
  const r = measure(ref, quick ? 4 : 16, 2);
  rows.push({ engine: ref.name, prefill: r.prefill, decode: r.decode, wasmMiB: 0 });
  for (const quant of ["f32", "q8", "q4"] as EngineQuant[]) {
    for (const threads of [1, 2]) {
      const e = await WasmEngine.create(model, { quant, threads });
      measure(e, 8, 2); // warm up: tier-up, workspace sizes
      const m = measure(e, prompt, steps, 3);
      rows.push({
        engine: e.name,
        threads: e.name.endsWith("x2") ? 2 : 1,
        prefill: m.prefill,
        decode: m.decode,
        decodeRounds: m.rounds,
        bytesPerToken: e.decodeBytes,
        wasmMiB: e.kernels.bytes / 2 ** 20,
        vsRef: m.decode / r.decode,
      });
      console.log(`${e.name}: decode ${m.rounds.map(fmt).join(", ")} tok/s`);
      e.dispose();
    }
  }
  const rssMiB = Deno.memoryUsage().rss / 2 ** 20;
  const native1 = await probe?.measure();
  await probe?.dispose();
  const native = native0 && native1 ? bestOf([native0, native1]) : undefined;
  const load1 = Deno.loadavg();
  const table: (string | number)[][] = [[
    "engine",
    "prefill tok/s",
    "decode tok/s",
    "weights MiB/token",
    "bound tok/s",
    "of bound",
    "achieved GB/s",
    "decode × ref",
    "wasm memory MiB",
  ]];
  for (const x of rows) {
    const bytes = x.bytesPerToken as number | undefined;
    const bw = native && (x.threads === 2 ? native.t2 : native.t1);
    const bound = bytes && bw ? bw * 1e9 / bytes : undefined;
    x.boundTokS = bound;
    table.push([
      x.engine as string,
      x.prefill as number,
      x.decode as number,
      bytes ? bytes / 2 ** 20 : "",
      bound ?? "",
      bound ? `${((x.decode as number) / bound * 100).toFixed(0)}%` : "",
      bytes ? (x.decode as number) * bytes / 1e9 : "",
      x.vsRef === undefined ? "1" : fmt(x.vsRef as number),
      x.wasmMiB as number,
    ]);
  }
  printTable(table);
  console.log(`peak process RSS ${fmt(rssMiB)} MiB (f32 model in JS + each engine's wasm memory)`);
  await writeResults(quick ? "engine-quick" : "engine", {
    prompt,
    steps,
    rssMiB,
    native,
    load: [load0, load1],
    rows,
  });
  await updateReadme(
    "engine",
    `## engine${
      quick ? " (--quick)" : ""
    }\n\nSynthetic SmolLM2-135M-shaped model, prompt ${prompt} tokens, then 3 rounds of ` +
      `${steps} decoded tokens (the median round shown); peak process RSS ${fmt(rssMiB)} MiB. ` +
      `"bound": weight bytes per decode token over the native read bandwidth for the same ` +
      `thread count (${
        native ? `${fmt(native.t1)} GB/s 1 thread, ${fmt(native.t2)} GB/s 2` : "n/a"
      }, ` +
      `4 KiB pages like wasm; attention, norms and the KV cache come on top); "achieved GB/s": ` +
      `decode tok/s × weight bytes per token. Load average ` +
      `${load0.map((l) => l.toFixed(2)).join("/")} at the start, ` +
      `${load1.map((l) => l.toFixed(2)).join("/")} at the end (2 cores, shared).\n\n` +
      markdownTable(table.map((r) => r.map((c) => typeof c === "number" ? fmt(c) : c))),
  );
}
