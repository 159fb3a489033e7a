/**
 * The payload encodings of the activation wire frame: rows of hidden states in `f32`, `f16`
 * or `int8` with one f32 scale per row (token).
 *
 * | dtype  | bytes per row   | value                         | error bound per value      |
 * | ------ | --------------- | ----------------------------- | -------------------------- |
 * | `f32`  | 4 × dim         | exact                         | 0                          |
 * | `f16`  | 2 × dim         | IEEE binary16, nearest even   | 2^-11 relative (|x| ≥ 2^-14) |
 * | `int8` | dim (+4 scale)  | q × scale, scale = max\|x\|/127 | scale / 2 = max\|x\| / 254  |
 *
 * The int8 scales sit in their own section before the payload (see `wire.ts`); here they are
 * written and read together with the rows.
 *
 * @example
 * ```ts
 * import { quantizeRowsInt8, dequantizeRowsInt8 } from "./wire_payload.ts";
 * const { q, scales } = quantizeRowsInt8(new Float32Array([1, -0.5, 0.25, 0]), 1, 4);
 * console.log(dequantizeRowsInt8(q, scales, 1, 4)); // ≈ [1, -0.5, 0.25, 0]
 * ```
 *
 * @module
 */

import { f16ToF32, f32ToF16 } from "./dtype.ts";
import { TandemError } from "./errors.ts";

/** Payload encodings, indexed by their code on the wire. */
export const WIRE_DTYPES = ["f32", "f16", "int8"] as const;
/** A payload encoding. */
export type WireDtype = typeof WIRE_DTYPES[number];

/**
 * Bytes one row of `dim` values takes on the wire (int8 includes its 4-byte scale).
 *
 * @example
 * ```ts
 * import { rowBytes } from "./wire_payload.ts";
 * console.log(rowBytes("int8", 64)); // 68
 * ```
 */
export function rowBytes(dtype: WireDtype, dim: number): number {
  return dtype === "f32" ? 4 * dim : dtype === "f16" ? 2 * dim : dim + 4;
}

/**
 * Symmetric int8 quantization with one scale per row: scale = max|x| / 127, q = round(x / scale).
 *
 * @example
 * ```ts
 * import { quantizeRowsInt8 } from "./wire_payload.ts";
 * console.log(quantizeRowsInt8(new Float32Array([2, -1]), 1, 2).q); // Int8Array [127, -64]
 * ```
 */
export function quantizeRowsInt8(
  rows: Float32Array,
  n: number,
  dim: number,
): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(n * dim);
  const scales = new Float32Array(n);
  for (let t = 0; t < n; t++) {
    let max = 0;
    for (let i = 0; i < dim; i++) max = Math.max(max, Math.abs(rows[t * dim + i]));
    const scale = Math.fround(max / 127);
    scales[t] = scale;
    if (scale === 0) continue;
    const inv = 1 / scale;
    for (let i = 0; i < dim; i++) {
      const r = Math.round(rows[t * dim + i] * inv);
      q[t * dim + i] = r > 127 ? 127 : r < -127 ? -127 : r;
    }
  }
  return { q, scales };
}

/**
 * Inverse of {@linkcode quantizeRowsInt8}: value = q × scale.
 *
 * @example
 * ```ts
 * import { dequantizeRowsInt8 } from "./wire_payload.ts";
 * console.log(dequantizeRowsInt8(new Int8Array([127]), new Float32Array([0.5]), 1, 1)); // [63.5]
 * ```
 */
export function dequantizeRowsInt8(
  q: Int8Array,
  scales: Float32Array,
  n: number,
  dim: number,
): Float32Array {
  const out = new Float32Array(n * dim);
  for (let t = 0; t < n; t++) {
    const s = scales[t];
    for (let i = 0; i < dim; i++) out[t * dim + i] = q[t * dim + i] * s;
  }
  return out;
}

function checkFinite(rows: Float32Array, dim: number, what: (row: number) => string): void {
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i])) {
      throw new TandemError("bad_argument", `${what(Math.floor(i / dim))}: value ${rows[i]}`);
    }
  }
}

/**
 * Writes the scales (int8 only) and rows at `off` of `out`. Throws `bad_argument` on
 * non-finite values or an f16 overflow.
 *
 * @example
 * ```ts
 * import { encodeRows } from "./wire_payload.ts";
 * const out = new Uint8Array(8);
 * encodeRows(out, 0, "f32", new Float32Array([1, 2]), 1, 2, true);
 * ```
 */
export function encodeRows(
  out: Uint8Array,
  off: number,
  dtype: WireDtype,
  rows: Float32Array,
  n: number,
  dim: number,
  littleEndian: boolean,
): void {
  checkFinite(rows, dim, (r) => `Cannot encode frame: row ${r} is not finite`);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (dtype === "f32") {
    if (littleEndian) out.set(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength), off);
    else for (let i = 0; i < rows.length; i++) v.setFloat32(off + 4 * i, rows[i], true);
  } else if (dtype === "f16") {
    const bits = f32ToF16(rows.byteOffset % 4 === 0 ? rows : rows.slice());
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i] & 0x7c00) === 0x7c00) {
        throw new TandemError(
          "bad_argument",
          `Cannot encode frame: row ${Math.floor(i / dim)} holds ${
            rows[i]
          }, beyond f16's range (65504); use f32 or int8 on the wire`,
        );
      }
      v.setUint16(off + 2 * i, bits[i], true);
    }
  } else {
    const { q, scales } = quantizeRowsInt8(rows, n, dim);
    for (let t = 0; t < n; t++) v.setFloat32(off + 4 * t, scales[t], true);
    out.set(new Uint8Array(q.buffer), off + 4 * n);
  }
}

/**
 * Reads the scales (int8 only) and rows at `off` of `bytes` into f32; calls `fail` on any
 * non-finite value or bad scale. The caller has checked the length.
 *
 * @example
 * ```ts
 * import { decodeRows } from "./wire_payload.ts";
 * const rows = decodeRows(new Uint8Array(8), 0, "f32", 1, 2, true, (why) => { throw new Error(why); });
 * ```
 */
export function decodeRows(
  bytes: Uint8Array,
  off: number,
  dtype: WireDtype,
  n: number,
  dim: number,
  littleEndian: boolean,
  fail: (why: string) => never,
): Float32Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let rows: Float32Array;
  if (dtype === "f32") {
    if (littleEndian) rows = new Float32Array(bytes.slice(off, off + 4 * n * dim).buffer);
    else {
      rows = new Float32Array(n * dim);
      for (let i = 0; i < rows.length; i++) rows[i] = v.getFloat32(off + 4 * i, true);
    }
  } else if (dtype === "f16") {
    const bits = new Uint16Array(n * dim);
    for (let i = 0; i < bits.length; i++) bits[i] = v.getUint16(off + 2 * i, true);
    rows = f16ToF32(bits);
  } else {
    const scales = new Float32Array(n);
    for (let t = 0; t < n; t++) {
      const s = v.getFloat32(off + 4 * t, true);
      if (!(Number.isFinite(s) && s >= 0)) fail(`row ${t} has int8 scale ${s}`);
      scales[t] = s;
    }
    const q = new Int8Array(bytes.slice(off + 4 * n, off + 4 * n + n * dim).buffer);
    rows = dequantizeRowsInt8(q, scales, n, dim);
  }
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i])) {
      fail(`row ${Math.floor(i / dim)} holds a non-finite value (${rows[i]})`);
    }
  }
  return rows;
}
