/**
 * Weights of a {@linkcode WasmEngine} inside wasm memory: each matrix uploaded as f32 or
 * quantized at load (runtime/quant.ts), stored in the kernels' row-tiled layouts
 * (kernels/layout.ts: f32 chunks, or tile-block records of quants and scales), and a matmul
 * that dispatches on the weight's type.
 *
 * @module
 */

import type { Kernels } from "../kernels/binding.ts";
import {
  CHUNK,
  recordBytes,
  TILE,
  tiledRows,
  tileQuant,
  tileRows,
  untileQuantRow,
  untileRow,
} from "../kernels/layout.ts";
import type { ThreadPool } from "../kernels/pool.ts";
import { check } from "./errors.ts";
import {
  blocksPerRow,
  checkQuantTensor,
  dequantizeRow,
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
  /** f32: the values; q8_0/q4_0: tile-block records of quants and scales. */
  ptr: number;
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
      bytes: t.byteLength,
    };
  }
  const type = storedType(weightType)!;
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
  const t = tileQuant(type, q.qs, q.d, rows, blocksPerRow(cols));
  return {
    type,
    f32Act: weightType === "q8_0f",
    rows,
    cols,
    ptr: k.put(t),
    bytes: t.byteLength,
  };
}

/** The block format a weight type is stored in (q8_0f stores q8_0); undefined for f32. */
export function storedType(weightType: WeightType): QuantType | undefined {
  return weightType === "f32" ? undefined : weightType === "q4_0" ? "q4_0" : "q8_0";
}

/** Frees a matrix's memory. */
export function freeMatrix(k: Kernels, m: WasmMatrix): void {
  k.free(m.ptr);
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
  const qs = m.type === "q8_0" ? new Int8Array(nb * 32) : new Uint8Array(nb * 16);
  untileQuantRow(
    new Uint8Array(buf, m.ptr, R / TILE * nb * recordBytes(m.type)),
    m.type,
    nb,
    r,
    qs,
    d,
  );
  dequantizeRow({ type: m.type, rows: 1, cols: m.cols, qs, d }, 0, out);
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
    pool.run("matmul_q8f", [out, x, w.ptr, n, w.cols, w.rows, bias], w.rows, work);
  } else {
    const fn = w.type === "q8_0" ? "matmul_q8" : "matmul_q4";
    pool.run(fn, [out, act, w.ptr, n, w.cols, w.rows, bias], w.rows, work);
  }
}
