/**
 * An independent, deliberately naive Llama forward pass over Hugging Face tensors (names and
 * the half-rotation RoPE of `transformers`' `rotate_half`), in f64, one position at a time.
 * It shares no code with the runtime, so agreeing with it proves the load-time permutation.
 *
 * @example
 * ```ts
 * import { hfReferenceLogits } from "./_hf_reference.ts";
 * import type { ModelConfig } from "../runtime/model.ts";
 * declare const config: ModelConfig; declare const w: (name: string) => Float32Array;
 * const logits = hfReferenceLogits(config, w, [1, 2, 3]); // [3, vocab]
 * ```
 *
 * @module
 */

import type { ModelConfig } from "../runtime/model.ts";

/** inv_freq as transformers computes it, including `_compute_llama3_parameters`. */
function invFreq(c: ModelConfig): number[] {
  const d = c.headDim;
  const inv = Array.from({ length: d / 2 }, (_, i) => 1 / c.ropeTheta ** ((2 * i) / d));
  const s = c.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalMaxPos / s.lowFreqFactor;
  const highWavelen = s.originalMaxPos / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    const scaled = wavelen > lowWavelen ? f / s.factor : f;
    const isMedium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (!isMedium) return scaled;
    const smooth = (s.originalMaxPos / wavelen - s.lowFreqFactor) /
      (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * scaled / s.factor + smooth * scaled;
  });
}

const matvec = (w: Float32Array, x: number[], rows: number, bias?: Float32Array): number[] =>
  Array.from({ length: rows }, (_, r) => {
    let s = bias ? bias[r] : 0;
    for (let i = 0; i < x.length; i++) s += w[r * x.length + i] * x[i];
    return s;
  });

const rmsnorm = (x: number[], w: Float32Array, eps: number): number[] => {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * w[i]);
};

/** Rotates each head as rotate_half does: pairs (x[j], x[j + d/2]). */
function ropeHalves(x: number[], heads: number, d: number, pos: number, inv: number[]): number[] {
  const out = x.slice();
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < d / 2; j++) {
      const a = x[h * d + j];
      const b = x[h * d + j + d / 2];
      const cos = Math.cos(pos * inv[j]);
      const sin = Math.sin(pos * inv[j]);
      out[h * d + j] = a * cos - b * sin;
      out[h * d + j + d / 2] = b * cos + a * sin;
    }
  }
  return out;
}

/**
 * Logits [n, vocab] for `tokens` at positions 0..n-1, computed from HF-named tensors.
 *
 * @example
 * ```ts
 * import { hfReferenceLogits } from "./_hf_reference.ts";
 * ```
 */
export function hfReferenceLogits(
  c: ModelConfig,
  w: (name: string) => Float32Array,
  tokens: number[],
): Float32Array {
  const { dim, nHeads, nKvHeads, headDim: d, hiddenDim, vocabSize, normEps } = c;
  const inv = invFreq(c);
  const keys: number[][][] = Array.from({ length: c.nLayers }, () => []);
  const values: number[][][] = Array.from({ length: c.nLayers }, () => []);
  const out = new Float32Array(tokens.length * vocabSize);
  const bias = (n: string) => (c.qkvBias ? w(n) : undefined);
  tokens.forEach((tok, pos) => {
    let x = Array.from(w("model.embed_tokens.weight").subarray(tok * dim, (tok + 1) * dim));
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      const xn = rmsnorm(x, w(p + "input_layernorm.weight"), normEps);
      const q = ropeHalves(
        matvec(w(p + "self_attn.q_proj.weight"), xn, nHeads * d, bias(p + "self_attn.q_proj.bias")),
        nHeads,
        d,
        pos,
        inv,
      );
      keys[l].push(
        ropeHalves(
          matvec(
            w(p + "self_attn.k_proj.weight"),
            xn,
            nKvHeads * d,
            bias(p + "self_attn.k_proj.bias"),
          ),
          nKvHeads,
          d,
          pos,
          inv,
        ),
      );
      values[l].push(
        matvec(
          w(p + "self_attn.v_proj.weight"),
          xn,
          nKvHeads * d,
          bias(p + "self_attn.v_proj.bias"),
        ),
      );
      const att: number[] = [];
      for (let h = 0; h < nHeads; h++) {
        const kv = Math.floor(h / (nHeads / nKvHeads)); // repeat_kv
        const scores = keys[l].map((k) => {
          let s = 0;
          for (let i = 0; i < d; i++) s += q[h * d + i] * k[kv * d + i];
          return s / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < d; i++) {
          att.push(e.reduce((a, p_, t) => a + (p_ / sum) * values[l][t][kv * d + i], 0));
        }
      }
      const o = matvec(w(p + "self_attn.o_proj.weight"), att, dim);
      x = x.map((v, i) => v + o[i]);
      const xf = rmsnorm(x, w(p + "post_attention_layernorm.weight"), normEps);
      const gate = matvec(w(p + "mlp.gate_proj.weight"), xf, hiddenDim);
      const up = matvec(w(p + "mlp.up_proj.weight"), xf, hiddenDim);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = matvec(w(p + "mlp.down_proj.weight"), act, dim);
      x = x.map((v, i) => v + down[i]);
    }
    const xn = rmsnorm(x, w("model.norm.weight"), normEps);
    const cls = c.tiedEmbeddings ? w("model.embed_tokens.weight") : w("lm_head.weight");
    out.set(matvec(cls, xn, vocabSize), pos * vocabSize);
  });
  return out;
}
