/**
 * Reference kernels for quantized weights, in plain TypeScript: the specification of the wasm
 * exports `quantize_act`, `matmul_q8` and `matmul_q4` (block layouts in runtime/quant.ts).
 * Activations are quantized per block of 32 to int8 (q8_0 rounding); the dot products are
 * exact integer sums scaled per block.
 *
 * @example
 * ```ts
 * import { matmulQuant, quantizeAct } from "./ref_quant.ts";
 * const x = new Float32Array(32).fill(1);
 * const act = quantizeAct(x, 1, 32);
 * const out = new Float32Array(1);
 * matmulQuant(out, act, "q8_0", new Int8Array(32).fill(2), new Float32Array([0.5]), 1, 32, 1);
 * console.log(out[0]); // 32
 * ```
 *
 * @module
 */

/** Activations quantized per block of 32: qs int8 [n, nb * 32], d f32 [n, nb]. */
export interface QuantAct {
  /** Quants, zero past din. */
  qs: Int8Array;
  /** Scales. */
  d: Float32Array;
  /** Blocks per token. */
  nb: number;
}

/** Quantizes x: [n, din] as the wasm `quantize_act` does (f32 arithmetic, roundf). */
export function quantizeAct(x: Float32Array, n: number, din: number): QuantAct {
  const nb = Math.ceil(din / 32);
  const qs = new Int8Array(n * nb * 32);
  const d = new Float32Array(n * nb);
  for (let t = 0; t < n; t++) {
    for (let b = 0; b < nb; b++) {
      const lo = b * 32, hi = Math.min(lo + 32, din);
      let amax = 0;
      for (let i = lo; i < hi; i++) amax = Math.max(amax, Math.abs(x[t * din + i]));
      d[t * nb + b] = Math.fround(amax / 127);
      const id = amax > 0 ? Math.fround(127 / amax) : 0;
      for (let i = lo; i < hi; i++) {
        const v = Math.fround(x[t * din + i] * id);
        const q = Math.trunc(Math.fround(v + (v >= 0 ? 0.5 : -0.5)));
        qs[(t * nb + b) * 32 + i - lo] = Math.max(-127, Math.min(127, q));
      }
    }
  }
  return { qs, d, nb };
}

/**
 * out[t, o] = sum_b wd[o, b] · xd[t, b] · sum_j wq[o, b, j] · xq[t, b, j] (+ bias[o]).
 *
 * out: [n, dout]; wq: q8_0 int8 [dout, nb * 32] or q4_0 packed [dout, nb * 16]; wd: [dout, nb].
 */
export function matmulQuant(
  out: Float32Array,
  act: QuantAct,
  type: "q8_0" | "q4_0",
  wq: Int8Array | Uint8Array,
  wd: Float32Array,
  n: number,
  din: number,
  dout: number,
  bias?: Float32Array,
): void {
  const nb = Math.ceil(din / 32);
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < dout; o++) {
      let s = 0;
      for (let b = 0; b < nb; b++) {
        const xo = (t * nb + b) * 32;
        let dot = 0;
        if (type === "q8_0") {
          const wo = (o * nb + b) * 32;
          for (let j = 0; j < 32; j++) dot += wq[wo + j] * act.qs[xo + j];
        } else {
          const wo = (o * nb + b) * 16;
          for (let j = 0; j < 16; j++) {
            dot += ((wq[wo + j] & 15) - 8) * act.qs[xo + j];
            dot += ((wq[wo + j] >> 4) - 8) * act.qs[xo + j + 16];
          }
        }
        s += wd[o * nb + b] * act.d[t * nb + b] * dot;
      }
      out[t * dout + o] = bias ? s + bias[o] : s;
    }
  }
}
