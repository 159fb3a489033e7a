/**
 * `deno task bench kernels [--quick]`: decode matvecs (n = 1) on real model shapes, for the
 * plain TypeScript loop, the wasm kernels with 1 and 2 threads in f32 / q8_0 / q4_0, and
 * onnxruntime-web's wasm MatMul; achieved weight-streaming GB/s as a fraction of a native
 * read-bandwidth probe run in the same process.
 *
 * Weights are replicated until each variant streams ≥ 96 MiB per sweep (3× the L3 here), so
 * GB/s is memory bandwidth, not cache. The TypeScript loop and the onnxruntime-web peer use
 * one copy each (cache-hot for small shapes); their ratios compare against our kernel on one
 * copy too ("hot").
 *
 * @module
 */

import { loadKernels } from "../kernels/binding.ts";
import { ThreadPool } from "../kernels/pool.ts";
import * as ref from "../kernels/ref.ts";
import { quantize } from "../runtime/quant.ts";
import { nativeReadBandwidth } from "./_native_probe.ts";
import { ortMatmul } from "./_ort_peer.ts";
import { markdownTable, updateReadme } from "./_readme.ts";
import { fmt, median, printTable, writeResults } from "./_results.ts";

const SHAPES: [string, number, number][] = [
  ["135M qkv/o", 576, 576],
  ["135M k/v", 576, 192],
  ["135M up", 576, 1536],
  ["135M down", 1536, 576],
  ["135M head", 576, 49152],
  ["1B attn", 2048, 2048],
  ["1B up", 2048, 8192],
  ["1B down", 8192, 2048],
];
const QUICK = new Set(["135M qkv/o", "135M up", "135M head", "1B up"]);
const STREAM_BYTES = 96 << 20;

/** Median µs per call of `fn` over 5 batches of at least `ms` each. */
async function time(fn: () => unknown, ms: number): Promise<number> {
  for (let i = 0; i < 3; i++) await fn();
  const per: number[] = [];
  for (let b = 0; b < 5; b++) {
    let calls = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      await fn();
      calls++;
    }
    per.push((performance.now() - t0) * 1000 / calls);
  }
  return median(per);
}

/** One measured variant of one shape. */
interface Row {
  shape: string;
  din: number;
  dout: number;
  variant: string;
  us: number;
  gflops: number;
  gbs: number;
  ofCeiling?: number;
  vsTs?: number;
  vsOrt?: number;
}

/** Runs the bench; prints the table, writes results/kernels.json and the README section. */
export async function run(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const ms = quick ? 25 : 80;
  const ceiling = await nativeReadBandwidth();
  const k = await loadKernels();
  const pools = [await ThreadPool.create(k, 1), await ThreadPool.create(k, 2)];
  console.log(
    `kernels: ${k.reason}; ${
      pools[1].reason
    }; native read ${ceiling?.t1} GB/s (1 thread), ${ceiling?.t2} GB/s (2)`,
  );
  const rows: Row[] = [];
  let seed = 1;
  const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 31) - 1;
  for (const [shape, din, dout] of SHAPES.filter(([s]) => !quick || QUICK.has(s))) {
    const w = Float32Array.from({ length: din * dout }, rand);
    const x = Float32Array.from({ length: din }, rand);
    const flops = 2 * din * dout;
    const add = (variant: string, us: number, bytes: number, extra: Partial<Row> = {}) => {
      const gbs = bytes / us / 1000;
      rows.push({
        shape,
        din,
        dout,
        variant,
        us,
        gflops: flops / us / 1000,
        gbs,
        ofCeiling: ceiling ? gbs / ceiling.t1 : undefined,
        ...extra,
      });
      return us;
    };
    const tsOut = new Float32Array(dout);
    const tsUs = add(
      "ts f32",
      await time(() => ref.matmul(tsOut, x, w, 1, din, dout), ms),
      4 * din * dout,
    );

    const px = k.put(x), po = k.alloc(4 * dout), act = k.alloc(k.exports.act_bytes(1, din));
    const variants = [
      {
        name: "f32",
        bytes: 4 * din * dout,
        parts: [w] as (Float32Array | Int8Array | Uint8Array)[],
      },
      { name: "q8", bytes: 0, parts: [] as (Float32Array | Int8Array | Uint8Array)[] },
      { name: "q8f", bytes: 0, parts: [] as (Float32Array | Int8Array | Uint8Array)[] },
      { name: "q4", bytes: 0, parts: [] as (Float32Array | Int8Array | Uint8Array)[] },
    ];
    const q8 = quantize("q8_0", w, dout, din), q4 = quantize("q4_0", w, dout, din);
    variants[1].parts = variants[2].parts = [q8.qs, q8.d];
    variants[3].parts = [q4.qs, q4.d];
    let hotF32 = 0;
    for (const v of variants) {
      v.bytes = v.parts.reduce((a, p) => a + p.byteLength, 0);
      const copies = Math.max(1, Math.ceil(STREAM_BYTES / v.bytes));
      const ptrs = Array.from({ length: copies }, () => v.parts.map((p) => k.put(p)));
      for (const [ti, pool] of pools.entries()) {
        if (v.name === "q8f" && ti > 0) continue;
        let c = 0;
        const call = (p: number[]) => {
          if (v.name === "f32") pool.run("matmul_f32", [po, px, p[0], 1, din, dout, 0], dout);
          else if (v.name === "q8f") {
            pool.run("matmul_q8f", [po, px, p[0], p[1], 1, din, dout, 0], dout);
          } else {
            k.exports.quantize_act(act, px, 1, din);
            pool.run(v.name === "q8" ? "matmul_q8" : "matmul_q4", [
              po,
              act,
              p[0],
              p[1],
              1,
              din,
              dout,
              0,
            ], dout);
          }
        };
        const us = await time(() => call(ptrs[c++ % copies]), ms);
        add(`wasm ${v.name} ${pool.threads}t`, us, v.bytes, { vsTs: tsUs / us });
        if (v.name === "f32" && ti === 0) hotF32 = await time(() => call(ptrs[0]), ms);
      }
      for (const p of ptrs.flat()) k.free(p);
    }
    add("wasm f32 1t hot", hotF32, 4 * din * dout, { vsTs: tsUs / hotF32 });
    try {
      const peer = await ortMatmul(w, din, dout, 1);
      const ortUs = await time(() => peer.run(), ms);
      await peer.release();
      add("onnxruntime-web f32 1t", ortUs, 4 * din * dout, { vsOrt: ortUs / hotF32 });
    } catch (e) {
      console.log(`onnxruntime-web peer unavailable: ${e}`);
    }
    for (const p of [px, po, act]) k.free(p);
  }
  for (const p of pools) p.dispose();

  const table: (string | number)[][] = [[
    "shape",
    "variant",
    "µs",
    "GFLOP/s",
    "GB/s",
    "of native 1t",
    "× TS",
    "ORT/ours",
  ]];
  for (const r of rows) {
    table.push([
      `${r.shape} ${r.din}→${r.dout}`,
      r.variant,
      r.us,
      r.gflops,
      r.gbs,
      r.ofCeiling === undefined ? "" : `${(r.ofCeiling * 100).toFixed(0)}%`,
      r.vsTs === undefined ? "" : fmt(r.vsTs),
      r.vsOrt === undefined ? "" : fmt(r.vsOrt),
    ]);
  }
  printTable(table);
  await writeResults(quick ? "kernels-quick" : "kernels", {
    flavor: k.flavor,
    reason: k.reason,
    ceiling,
    rows,
  });
  await updateReadme(
    "kernels",
    `## kernels${
      quick ? " (--quick)" : ""
    }\n\nDecode matvecs, ${k.reason}; native read bandwidth ${ceiling?.t1} GB/s (1 thread), ` +
      `${ceiling?.t2} GB/s (2 threads). "× TS": speed-up over the plain TypeScript loop; "ORT/ours": ` +
      `onnxruntime-web's time over ours on the same (hot) weights, > 1 means we are faster.\n\n` +
      markdownTable(table.map((r) => r.map((c) => typeof c === "number" ? fmt(c) : c))),
  );
}
