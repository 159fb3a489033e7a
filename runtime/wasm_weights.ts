/**
 * Weights of a {@linkcode WasmEngine} inside wasm memory: each matrix uploaded as f32 or
 * quantized at load (runtime/quant.ts), and a matmul that dispatches on the weight's type.
 *
 * @module
 */

import type { Kernels } from "../kernels/binding.ts";
import type { ThreadPool } from "../kernels/pool.ts";
import { blocksPerRow, quantize, type QuantTensor, type QuantType } from "./quant.ts";

/** A weight matrix [rows, cols] in wasm memory. */
export interface WasmMatrix {
  /** Storage type. */
  type: "f32" | QuantType;
  /** Rows (outputs). */
  rows: number;
  /** Columns (inputs). */
  cols: number;
  /** f32: the values; q8_0/q4_0: the quants. */
  ptr: number;
  /** q8_0/q4_0: the scales (0 for f32). */
  scales: number;
}

/** Copies (f32) or quantizes then copies a matrix w: [rows, cols] into wasm memory. */
export function uploadMatrix(
  k: Kernels,
  w: Float32Array,
  rows: number,
  cols: number,
  type: "f32" | QuantType,
): WasmMatrix {
  if (type === "f32") return { type, rows, cols, ptr: k.put(w), scales: 0 };
  const q = quantize(type, w, rows, cols);
  return { type, rows, cols, ptr: k.put(q.qs), scales: k.put(q.d) };
}

/** Frees a matrix's memory. */
export function freeMatrix(k: Kernels, m: WasmMatrix): void {
  k.free(m.ptr);
  if (m.scales) k.free(m.scales);
}

/** A {@linkcode QuantTensor} viewing a quantized matrix in wasm memory (for row lookups). */
export function quantView(k: Kernels, m: WasmMatrix): QuantTensor {
  const nb = blocksPerRow(m.cols);
  const buf = k.memory.buffer;
  const qs = m.type === "q8_0"
    ? new Int8Array(buf, m.ptr, m.rows * nb * 32)
    : new Uint8Array(buf, m.ptr, m.rows * nb * 16);
  return {
    type: m.type as QuantType,
    rows: m.rows,
    cols: m.cols,
    qs,
    d: k.f32(m.scales, m.rows * nb),
  };
}

/**
 * out: [n, rows] = x: [n, cols] · Wᵀ (+ bias), split across the pool's threads. For quantized
 * weights, `act` must already hold x quantized by `quantize_act` (shared by every matrix
 * that reads the same x).
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
  } else {
    const fn = w.type === "q8_0" ? "matmul_q8" : "matmul_q4";
    pool.run(fn, [out, act, w.ptr, w.scales, n, w.cols, w.rows, bias], w.rows, work);
  }
}
