/**
 * Conversions between f32 and the 16-bit float formats checkpoints are stored in.
 *
 * | dtype  | bits                          | note                                  |
 * | ------ | ----------------------------- | ------------------------------------- |
 * | `f16`  | 1 sign, 5 exponent, 10 mantissa | IEEE 754 binary16, subnormals kept  |
 * | `bf16` | 1 sign, 8 exponent, 7 mantissa  | the top 16 bits of an f32           |
 *
 * All functions work on typed arrays of raw bits (`Uint16Array`) and round to nearest even
 * when narrowing, so `f16ToF32(f32ToF16(x))` is what a PyTorch `x.half().float()` gives.
 *
 * @example
 * ```ts
 * import { f16ToF32, f32ToF16 } from "./dtype.ts";
 * const bits = f32ToF16(new Float32Array([1, 0.1, -2.5]));
 * console.log(f16ToF32(bits)); // Float32Array [1, 0.0999755859375, -2.5]
 * ```
 *
 * @module
 */

/** Exponent table for f16 → f32: 2^(e-15) for each 5-bit exponent e (e = 0: subnormal scale). */
const F16_SCALE = (() => {
  const t = new Float64Array(32);
  for (let e = 0; e < 32; e++) t[e] = e === 0 ? 2 ** -24 : 2 ** (e - 25);
  return t;
})();

/**
 * Widens f16 bits to f32 values.
 *
 * @example
 * ```ts
 * import { f16ToF32 } from "./dtype.ts";
 * console.log(f16ToF32(new Uint16Array([0x3c00, 0xc000]))); // Float32Array [1, -2]
 * ```
 */
export function f16ToF32(
  bits: Uint16Array,
  out: Float32Array = new Float32Array(bits.length),
): Float32Array {
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    let v: number;
    if (e === 0x1f) v = m ? NaN : Infinity;
    else if (e === 0) v = m * F16_SCALE[0];
    else v = (m + 1024) * F16_SCALE[e];
    out[i] = h & 0x8000 ? -v : v;
  }
  return out;
}

/**
 * Narrows f32 values to f16 bits, rounding to nearest even; out-of-range values become ±Inf.
 *
 * @example
 * ```ts
 * import { f32ToF16 } from "./dtype.ts";
 * console.log(f32ToF16(new Float32Array([1, -2]))); // Uint16Array [15360, 49152]
 * ```
 */
export function f32ToF16(
  values: Float32Array,
  out: Uint16Array = new Uint16Array(values.length),
): Uint16Array {
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const x = u32[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const man = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (man ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      // Subnormal or zero in f16: shift the full mantissa (with its implicit 1) into place.
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      const full = man | 0x800000;
      const shift = 14 - e; // 14..24
      let h = full >>> shift;
      const rem = full & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1))) h++;
      out[i] = sign | h;
    } else {
      let h = (e << 10) | (man >>> 13);
      const rem = man & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // may carry into the exponent: fine
      out[i] = sign | h;
    }
  }
  return out;
}

/**
 * Widens bf16 bits to f32 values (exact: bf16 is the top half of an f32).
 *
 * @example
 * ```ts
 * import { bf16ToF32 } from "./dtype.ts";
 * console.log(bf16ToF32(new Uint16Array([0x3f80]))); // Float32Array [1]
 * ```
 */
export function bf16ToF32(
  bits: Uint16Array,
  out: Float32Array = new Float32Array(bits.length),
): Float32Array {
  const u32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i] << 16;
  return out;
}

/**
 * Narrows f32 values to bf16 bits, rounding to nearest even (NaN stays NaN).
 *
 * @example
 * ```ts
 * import { f32ToBf16 } from "./dtype.ts";
 * console.log(f32ToBf16(new Float32Array([1]))); // Uint16Array [16256]
 * ```
 */
export function f32ToBf16(
  values: Float32Array,
  out: Uint16Array = new Uint16Array(values.length),
): Uint16Array {
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const x = u32[i];
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff)) {
      out[i] = (x >>> 16) | 0x40;
      continue;
    }
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Rounds f32 values through a 16-bit format and back (what a model saved as f16/bf16 holds).
 *
 * @example
 * ```ts
 * import { roundTo } from "./dtype.ts";
 * console.log(roundTo(new Float32Array([0.1]), "bf16")); // Float32Array [0.10009765625]
 * ```
 */
export function roundTo(values: Float32Array, dtype: "f16" | "bf16"): Float32Array {
  return dtype === "f16" ? f16ToF32(f32ToF16(values)) : bf16ToF32(f32ToBf16(values));
}
