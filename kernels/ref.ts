/**
 * Reference kernels in plain TypeScript: the specification every wasm kernel is tested
 * against, and the fallback where wasm is unavailable.
 *
 * Conventions: outputs come first; matrices are row-major; a weight `w` of shape
 * `[outDim, inDim]` maps `x` to `y = W x`. Activations of `n` tokens are `[n, dim]`.
 * Kernels never throw: callers validate shapes once, at the boundary.
 *
 * @example
 * ```ts
 * import { matmul } from "./ref.ts";
 * const w = new Float32Array([1, 2, 3, 4]); // [2, 2]
 * const out = new Float32Array(2);
 * matmul(out, new Float32Array([1, 1]), w, 1, 2, 2);
 * console.log(out); // Float32Array [3, 7]
 * ```
 *
 * @module
 */

/**
 * out[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o]) for t < n, o < outDim.
 *
 * x: [n, inDim], w: [outDim, inDim], out: [n, outDim].
 */
export function matmul(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  n: number,
  inDim: number,
  outDim: number,
  bias?: Float32Array,
): void {
  for (let t = 0; t < n; t++) {
    const xo = t * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[xo + i] * w[wo + i];
      out[t * outDim + o] = bias ? s + bias[o] : s;
    }
  }
}

/** out[t] = x[t] / rms(x[t]) * weight, per token. x, out: [n, dim]; weight: [dim]. */
export function rmsnorm(
  out: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  n: number,
  dim: number,
  eps: number,
): void {
  for (let t = 0; t < n; t++) {
    const o = t * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const scale = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[o + i] = weight[i] * (x[o + i] * scale);
  }
}

/**
 * Inverse frequencies for RoPE: freqs[j] = theta^(-2j/headDim), j < headDim/2,
 * optionally rescaled as Llama 3.1 does.
 */
export function ropeFrequencies(
  headDim: number,
  theta: number,
  scaling?: {
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPos: number;
  },
): Float32Array {
  const freqs = new Float32Array(headDim / 2);
  for (let j = 0; j < headDim / 2; j++) {
    let f = 1 / Math.pow(theta, (2 * j) / headDim);
    if (scaling) {
      const lowWavelen = scaling.originalMaxPos / scaling.lowFreqFactor;
      const highWavelen = scaling.originalMaxPos / scaling.highFreqFactor;
      const wavelen = 2 * Math.PI / f;
      if (wavelen > lowWavelen) f = f / scaling.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (scaling.originalMaxPos / wavelen - scaling.lowFreqFactor) /
          (scaling.highFreqFactor - scaling.lowFreqFactor);
        f = (1 - smooth) * f / scaling.factor + smooth * f;
      }
    }
    freqs[j] = f;
  }
  return freqs;
}

/**
 * Rotates consecutive pairs (x[2j], x[2j+1]) of every head of every token by angle
 * (pos0 + t) * freqs[j], in place. x: [n, nHeads * headDim].
 */
export function rope(
  x: Float32Array,
  n: number,
  nHeads: number,
  headDim: number,
  pos0: number,
  freqs: Float32Array,
): void {
  const rowLen = nHeads * headDim;
  for (let t = 0; t < n; t++) {
    const pos = pos0 + t;
    for (let j = 0; j < headDim / 2; j++) {
      const angle = pos * freqs[j];
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      for (let h = 0; h < nHeads; h++) {
        const i = t * rowLen + h * headDim + 2 * j;
        const a = x[i];
        const b = x[i + 1];
        x[i] = a * c - b * s;
        x[i + 1] = a * s + b * c;
      }
    }
  }
}

/** Softmax over x[off .. off+len), in place. */
export function softmax(x: Float32Array, off: number, len: number): void {
  let max = -Infinity;
  for (let i = 0; i < len; i++) if (x[off + i] > max) max = x[off + i];
  let sum = 0;
  for (let i = 0; i < len; i++) {
    const e = Math.exp(x[off + i] - max);
    x[off + i] = e;
    sum += e;
  }
  for (let i = 0; i < len; i++) x[off + i] /= sum;
}

/**
 * Causal grouped-query attention of n new tokens at positions pos0..pos0+n-1 over a KV cache
 * that already holds their keys and values.
 *
 * q: [n, nHeads*headDim]; kCache, vCache: [>= pos0+n, nKvHeads*headDim];
 * out: [n, nHeads*headDim]; scratch: at least pos0+n floats.
 */
export function attention(
  out: Float32Array,
  q: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  n: number,
  pos0: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  scratch: Float32Array,
): void {
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  for (let t = 0; t < n; t++) {
    const ctx = pos0 + t + 1;
    for (let h = 0; h < nHeads; h++) {
      const qo = t * qDim + h * headDim;
      const kvo = Math.floor(h / group) * headDim;
      for (let p = 0; p < ctx; p++) {
        let s = 0;
        const ko = p * kvDim + kvo;
        for (let i = 0; i < headDim; i++) s += q[qo + i] * kCache[ko + i];
        scratch[p] = s * scale;
      }
      softmax(scratch, 0, ctx);
      const oo = t * qDim + h * headDim;
      for (let i = 0; i < headDim; i++) out[oo + i] = 0;
      for (let p = 0; p < ctx; p++) {
        const a = scratch[p];
        const vo = p * kvDim + kvo;
        for (let i = 0; i < headDim; i++) out[oo + i] += a * vCache[vo + i];
      }
    }
  }
}

/** out[i] = silu(gate[i]) * up[i] for i < len; silu(x) = x / (1 + e^-x). */
export function swiglu(out: Float32Array, gate: Float32Array, up: Float32Array, len: number): void {
  for (let i = 0; i < len; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** x[i] += y[i] for i < len. */
export function add(x: Float32Array, y: Float32Array, len: number): void {
  for (let i = 0; i < len; i++) x[i] += y[i];
}
