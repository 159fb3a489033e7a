/**
 * Weights of a {@linkcode WasmEngine} inside wasm memory: each matrix uploaded as f32 or
 * quantized at load (runtime/quant.ts), stored in the kernels' row-tiled layout
 * (kernels/layout.ts), and a matmul that dispatches on the weight's type.
 *
 * @module
 */

import type { Kernels } from "../kernels/binding.ts";
import { CHUNK, tiledRows, tileRows, untileRow } from "../kernels/layout.ts";
import type { ThreadPool } from "../kernels/pool.ts";
import { check } from "./errors.ts";
import {
  blocksPerRow,
  checkQuantTensor,
  quantize,
  type QuantTensor,
  type QuantType,
} from "./quant.ts";

/**
 * How one weight matrix is stored and multiplied: f32; q8_0 × activations quantized to int8
 * on the fly (int8 dots); q8_0 × f32 activations (`q8_0f`, for matrices whose input must
 * keep full precision); q4_0 × int8 activations.
 */
export type WeightType = "f32" | "q8_0" | "q8_0f" | "q4_0";

/** A weight matrix [rows, cols] in wasm memory, row-tiled (kernels/layout.ts). */
export interface WasmMatrix {
  /** Storage type. */
  type: "f32" | QuantType;
  /** q8_0 only: multiply with f32 activations (matmul_q8f) instead of int8 ones. */
  f32Act: boolean;
  /** Rows (outputs). */
  rows: number;
  /** Columns (inputs). */
  cols: number;
  /** f32: the values; q8_0/q4_0: the quants. */
  ptr: number;
  /** q8_0/q4_0: the scales (0 for f32). */
  scales: number;
  /** Bytes the matrix occupies (read once per decode token). */
  bytes: number;
}

/**
 * Copies (f32) or quantizes then copies a matrix w: [rows, cols] into wasm memory. With
 * `quantized` (the same matrix already quantized to the type `weightType` stores, e.g. by
 * runtime/calibrate.ts), that is stored instead; a mismatch is `bad_argument`.
 */
export function uploadMatrix(
  k: Kernels,
  w: Float32Array,
  rows: number,
  cols: number,
  weightType: WeightType,
  quantized?: QuantTensor,
): WasmMatrix {
  if (weightType === "f32") {
    const t = tileRows(w, rows, cols, CHUNK.f32);
    return {
      type: "f32",
      f32Act: false,
      rows,
      cols,
      ptr: k.put(t),
      scales: 0,
      bytes: t.byteLength,
    };
  }
  const type: QuantType = weightType === "q4_0" ? "q4_0" : "q8_0";
  if (quantized) {
    check(
      quantized.type === type && quantized.rows === rows && quantized.cols === cols,
      "bad_argument",
      () =>
        `Cannot upload a quantized ${quantized.type} [${quantized.rows}, ${quantized.cols}] as ${weightType} [${rows}, ${cols}]`,
    );
    checkQuantTensor(quantized);
  }
  const q = quantized ?? quantize(type, w, rows, cols, type === "q4_0" ? "rmse" : "max");
  const nb = blocksPerRow(cols);
  const qs = tileRows(q.qs, rows, q.qs.length / rows, CHUNK[type]);
  const d = tileRows(q.d, rows, nb, CHUNK.scales);
  return {
    type,
    f32Act: weightType === "q8_0f",
    rows,
    cols,
    ptr: k.put(qs),
    scales: k.put(d),
    bytes: qs.byteLength + d.byteLength,
  };
}

/** Frees a matrix's memory. */
export function freeMatrix(k: Kernels, m: WasmMatrix): void {
  k.free(m.ptr);
  if (m.scales) k.free(m.scales);
}

/** Row r of a matrix in wasm memory, dequantized, into out: [cols]. */
export function readRow(k: Kernels, m: WasmMatrix, r: number, out: Float32Array): void {
  const buf = k.memory.buffer;
  const R = tiledRows(m.rows);
  if (m.type === "f32") {
    untileRow(new Float32Array(buf, m.ptr, R * m.cols), m.cols, CHUNK.f32, r, out);
    return;
  }
  const nb = blocksPerRow(m.cols);
  const d = new Float32Array(nb);
  untileRow(new Float32Array(buf, m.scales, R * nb), nb, CHUNK.scales, r, d);
  if (m.type === "q8_0") {
    const q = new Int8Array(nb * 32);
    untileRow(new Int8Array(buf, m.ptr, R * nb * 32), nb * 32, CHUNK.q8_0, r, q);
    for (let i = 0; i < m.cols; i++) out[i] = d[i >> 5] * q[i];
  } else {
    const q = new Uint8Array(nb * 16);
    untileRow(new Uint8Array(buf, m.ptr, R * nb * 16), nb * 16, CHUNK.q4_0, r, q);
    for (let i = 0; i < m.cols; i++) {
      const j = i & 31, byte = q[(i >> 5) * 16 + (j & 15)];
      out[i] = d[i >> 5] * ((j < 16 ? byte & 15 : byte >> 4) - 8);
    }
  }
}

/**
 * out: [n, rows] = x: [n, cols] · Wᵀ (+ bias), split across the pool's threads. For quantized
 * weights with int8 activations, `act` must already hold x quantized by `quantize_act` (shared
 * by every matrix that reads the same x).
 */
export function matmul(
  pool: ThreadPool,
  out: number,
  x: number,
  act: number,
  w: WasmMatrix,
  n: number,
  bias = 0,
): void {
  const work = n * w.rows * w.cols;
  if (w.type === "f32") {
    pool.run("matmul_f32", [out, x, w.ptr, n, w.cols, w.rows, bias], w.rows, work);
  } else if (w.f32Act) {
    pool.run("matmul_q8f", [out, x, w.ptr, w.scales, n, w.cols, w.rows, bias], w.rows, work);
  } else {
    const fn = w.type === "q8_0" ? "matmul_q8" : "matmul_q4";
    pool.run(fn, [out, act, w.ptr, w.scales, n, w.cols, w.rows, bias], w.rows, work);
  }
}
