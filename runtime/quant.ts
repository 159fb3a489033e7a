/**
 * Weight quantization at load time: `q8_0` (int8) and `q4_0` (int4), blocks of 32 values
 * with one scale each, as ggml defines them, stored as two flat arrays (structure of arrays)
 * so the wasm kernels load quants with aligned 16-byte SIMD loads.
 *
 * A matrix of `rows × cols` is quantized row by row; each row holds nb = ceil(cols / 32)
 * blocks, the last one zero-padded.
 *
 * | type   | qs per block                                  | d per block | bytes / 32 values |
 * | ------ | --------------------------------------------- | ----------- | ----------------- |
 * | `q8_0` | 32 × int8 q, value = d · q, q in [-127, 127]  | f32         | 36                |
 * | `q4_0` | 16 × uint8: byte j = (q[j] + 8) \| (q[j+16] + 8) << 4, value = d · q, q in [-8, 7] | f32 | 20 |
 *
 * Differences from ggml's `block_q8_0`/`block_q4_0` (34 and 18 bytes): the scale is f32, not
 * f16 (wasm has no f16 instructions), and scales and quants live in separate arrays. The
 * rounding is ggml's: q8_0 rounds half away from zero; q4_0 takes d = max / -8 where max is
 * the value of largest magnitude, and truncates x / d + 8.5.
 *
 * @example
 * ```ts
 * import { dequantize, quantize } from "./quant.ts";
 * const w = new Float32Array(64).map((_, i) => Math.sin(i));
 * const q = quantize("q8_0", w, 2, 32);
 * console.log(dequantize(q)[5]); // ≈ Math.sin(5)
 * ```
 *
 * @module
 */

import { check } from "./errors.ts";

/** Values per q8_0 block. */
export const QK8_0 = 32;
/** Values per q4_0 block. */
export const QK4_0 = 32;

/** A quantized weight type. */
export type QuantType = "q8_0" | "q4_0";

/** A quantized matrix [rows, cols] (see the module doc for the layout). */
export interface QuantTensor {
  /** Block format. */
  type: QuantType;
  /** Rows (outputs). */
  rows: number;
  /** Columns (inputs), before padding. */
  cols: number;
  /** Quants: q8_0 int8 [rows, nb * 32]; q4_0 packed uint8 [rows, nb * 16]. */
  qs: Int8Array | Uint8Array;
  /** Scales: f32 [rows, nb]. */
  d: Float32Array;
}

/** Blocks per row of `cols` values. */
export function blocksPerRow(cols: number): number {
  return Math.ceil(cols / 32);
}

/** Bytes of quants per block. */
export function quantBytesPerBlock(type: QuantType): number {
  return type === "q8_0" ? QK8_0 : QK4_0 / 2;
}

/** Checks that a tensor's arrays have exactly the sizes its type and shape need. */
export function checkQuantTensor(t: QuantTensor, name = "tensor"): void {
  const nb = blocksPerRow(t.cols);
  const want = t.rows * nb * quantBytesPerBlock(t.type);
  check(
    t.qs.length === want && t.d.length === t.rows * nb,
    "bad_model",
    () =>
      `Cannot use ${t.type} ${name} [${t.rows}, ${t.cols}]: it holds ${t.qs.length} quant bytes and ${t.d.length} scales, expected ${want} and ${
        t.rows * nb
      }`,
  );
}

/**
 * How a block's scale is chosen: "max" is ggml's reference rounding (the largest magnitude
 * maps to the end of the range); "rmse" tries 9 scales around it and keeps the one whose
 * least-squares fit has the smallest squared error (as llama.cpp's make_qx_quants), in the
 * same format. On stories260K, q4_0 with "rmse" agrees with f32 on ~1% more positions than
 * with "max" (tests/wasm_engine_test.ts); for q8_0 the two are alike, so q8_0 keeps ggml's.
 */
export type ScaleFit = "max" | "rmse";

/** Quantizes w: f32 [rows, cols] to `type`. */
export function quantize(
  type: QuantType,
  w: Float32Array,
  rows: number,
  cols: number,
  fit: ScaleFit = "max",
): QuantTensor {
  check(
    w.length === rows * cols,
    "bad_argument",
    () => `Cannot quantize: ${w.length} values are not [${rows}, ${cols}]`,
  );
  const nb = blocksPerRow(cols);
  const d = new Float32Array(rows * nb);
  const qs = type === "q8_0" ? new Int8Array(rows * nb * 32) : new Uint8Array(rows * nb * 16);
  const block = new Float32Array(32);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      block.fill(0);
      const lo = r * cols + b * 32;
      block.set(w.subarray(lo, Math.min(lo + 32, (r + 1) * cols)));
      const k = r * nb + b;
      d[k] = type === "q8_0"
        ? quantBlockQ8(qs as Int8Array, k * 32, block, fit)
        : quantBlockQ4(qs as Uint8Array, k * 16, block, fit);
    }
  }
  return { type, rows, cols, qs, d };
}

/**
 * Least-squares fit of one block: tries inverse scales (base + 0.1·i) / ref for |i| ≤ 4,
 * rounds x · iscale into [qmin, qmax], and keeps the candidate whose least-squares scale
 * d = Σ x·q / Σ q² explains x best (llama.cpp's make_qx_quants). Writes q; returns d.
 */
function fitBlock(
  x: Float32Array,
  q: Int32Array,
  base: number,
  ref: number,
  qmin: number,
  qmax: number,
): number {
  if (ref === 0) {
    q.fill(0);
    return 0;
  }
  let best = -1, bestD = 0;
  const L = FIT_L;
  for (let i = -FIT_SPAN; i <= FIT_SPAN; i++) {
    const iscale = (base + 0.1 * i) / ref;
    let sumlx = 0, suml2 = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[j] * iscale;
      const r = v >= 0 ? Math.floor(v + 0.5) : -Math.floor(-v + 0.5);
      const l = r < qmin ? qmin : r > qmax ? qmax : r;
      L[j] = l;
      sumlx += x[j] * l;
      suml2 += l * l;
    }
    if (suml2 > 0 && sumlx * sumlx / suml2 > best) {
      best = sumlx * sumlx / suml2;
      bestD = sumlx / suml2;
      q.set(L);
    }
  }
  return Math.fround(bestD);
}
const QF = new Int32Array(32);
const FIT_L = new Int32Array(32);
/** Candidates of the "rmse" fit: inverse scales (base + 0.1·i) / ref for |i| ≤ FIT_SPAN. */
const FIT_SPAN = 4;

/**
 * The scale {@linkcode quantize} gives one block of 32 values (zero-padded) of `type` with
 * `fit`; values are then d · q with q in [-127, 127] (q8_0) or [-8, 7] (q4_0).
 *
 * @example
 * ```ts
 * import { blockScale } from "./quant.ts";
 * const x = new Float32Array(32).fill(0.5);
 * x[3] = -2;
 * console.log(blockScale("q8_0", x, "max")); // 2 / 127
 * ```
 */
export function blockScale(type: QuantType, x: Float32Array, fit: ScaleFit = "max"): number {
  return type === "q8_0" ? quantBlockQ8(SCRATCH8, 0, x, fit) : quantBlockQ4(SCRATCH4, 0, x, fit);
}
const SCRATCH8 = new Int8Array(32);
const SCRATCH4 = new Uint8Array(16);

/** The range of each format's quants: a block's values are d · q with min ≤ q ≤ max. */
export const QUANT_RANGE: Readonly<Record<QuantType, readonly [number, number]>> = {
  q8_0: [-127, 127],
  q4_0: [-8, 7],
};

/**
 * Packs one q4_0 block: 32 quants q[off..off + 32) in [-8, 7] into 16 bytes at out[at..],
 * element j (+ 8) in the low nibble of byte j and element j + 16 in its high nibble.
 *
 * @example
 * ```ts
 * import { packQ4 } from "./quant.ts";
 * const out = new Uint8Array(16);
 * packQ4(new Int8Array(32).fill(-8), 0, out, 0);
 * console.log(out[0]); // 0
 * ```
 */
export function packQ4(q: ArrayLike<number>, off: number, out: Uint8Array, at: number): void {
  for (let j = 0; j < 16; j++) out[at + j] = (q[off + j] + 8) | ((q[off + j + 16] + 8) << 4);
}

/** Writes 32 int8 quants of `x` at qs[off..]; returns the scale. */
function quantBlockQ8(qs: Int8Array, off: number, x: Float32Array, fit: ScaleFit): number {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[j]));
  if (fit === "rmse") {
    const d = fitBlock(x, QF, 127, amax, ...QUANT_RANGE.q8_0);
    for (let j = 0; j < 32; j++) qs[off + j] = QF[j];
    return d;
  }
  const d = Math.fround(amax / 127);
  const id = d ? Math.fround(1 / d) : 0;
  for (let j = 0; j < 32; j++) qs[off + j] = roundHalfAway(Math.fround(x[j] * id));
  return d;
}

/** Writes 16 packed int4 pairs of `x` at qs[off..]; returns the scale. */
function quantBlockQ4(qs: Uint8Array, off: number, x: Float32Array, fit: ScaleFit): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < 32; j++) {
    if (Math.abs(x[j]) > amax) {
      amax = Math.abs(x[j]);
      max = x[j];
    }
  }
  if (fit === "rmse") {
    const d = fitBlock(x, QF, -8, max, ...QUANT_RANGE.q4_0);
    packQ4(QF, 0, qs, off);
    return d;
  }
  const d = Math.fround(max / -8);
  const id = d ? Math.fround(1 / d) : 0;
  const q = (v: number) => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
  for (let j = 0; j < 16; j++) qs[off + j] = q(x[j]) | (q(x[j + 16]) << 4);
  return d;
}

/** Rounds half away from zero, as C's roundf. */
export function roundHalfAway(v: number): number {
  return Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
}

/** Dequantizes row `r` into out: [cols]. */
export function dequantizeRow(t: QuantTensor, r: number, out: Float32Array): void {
  const nb = blocksPerRow(t.cols);
  for (let i = 0; i < t.cols; i++) {
    const b = i >> 5;
    const d = t.d[r * nb + b];
    if (t.type === "q8_0") {
      out[i] = d * t.qs[r * nb * 32 + i];
    } else {
      const j = i & 31;
      const byte = t.qs[(r * nb + b) * 16 + (j & 15)];
      out[i] = d * ((j < 16 ? byte & 15 : byte >> 4) - 8);
    }
  }
}

/** Dequantizes the whole matrix: f32 [rows, cols]. */
export function dequantize(t: QuantTensor): Float32Array {
  const out = new Float32Array(t.rows * t.cols);
  for (let r = 0; r < t.rows; r++) dequantizeRow(t, r, out.subarray(r * t.cols, (r + 1) * t.cols));
  return out;
}
