/**
 * Calibrated quantization of a model's weight matrices: each matrix quantized with GPTQ
 * (runtime/gptq.ts) against H = Σ x xᵀ of its inputs on calibration text, into the same
 * q8_0 / q4_0 blocks as round-to-nearest, so every engine and kernel runs the result as is.
 *
 * Calibration text is deterministic and needs no data set: by default the f32 model samples
 * it from BOS (temperature 1, a fixed seed), `count` sequences of `length` tokens; or pass
 * your own `tokens`. Inputs come from the f32 reference forward pass, one layer at a time
 * (the activations of every calibration token for one layer, and one layer's hessians, are
 * all that is held).
 *
 * Cost: sampling the text and the reference forward over it, the hessians, and GPTQ per
 * matrix. Stories260K with the defaults: ~10 s. At SmolLM2-135M's shape (plain TS): GPTQ
 * 2.2 min in all, hessians 7.8 ms per token and layer (4 min for 4 × 256 tokens, 32 min for
 * the default 16 × 512), plus the reference forward: do it once, offline, and pass the result
 * as the engine's `weights`.
 *
 * @example
 * ```ts
 * import { quantizeCalibrated } from "./calibrate.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const weights = quantizeCalibrated(model, () => "q8_0", { count: 4, length: 256 });
 * console.log(weights.get("layers.0.wq")?.type); // "q8_0"
 * ```
 *
 * @module
 */

import type { Engine } from "./engine.ts";
import { check } from "./errors.ts";
import { RefEngine } from "./forward.ts";
import { type GptqFactor, gptqFactor, quantizeGptq } from "./gptq.ts";
import type { Model, ModelConfig } from "./model.ts";
import type { QuantTensor, QuantType } from "./quant.ts";
import { Sampler } from "./sampling.ts";

/** Options of {@linkcode quantizeCalibrated}. */
export interface CalibrationOptions {
  /** Calibration token sequences; default: `count` × `length` tokens the model samples. */
  tokens?: readonly (readonly number[])[];
  /** Sequences to sample when `tokens` is absent (default 16). */
  count?: number;
  /** Tokens per sampled sequence, BOS included (default 512, clipped to the context). */
  length?: number;
  /** Seed of the sampler (default 1). */
  seed?: number;
  /** GPTQ dampening, a fraction of the hessian's mean diagonal (default 0.01). */
  damp?: number;
}

/** The type of each matrix to quantize; undefined keeps it f32 (not quantized). */
export type QuantPlan = (
  tensor: string,
  layer: number,
  config: ModelConfig,
) => QuantType | undefined;

/** The matrix whose input each layer matrix shares (their hessians are one). */
const INPUT_OF: Record<string, string> = {
  wq: "wq",
  wk: "wq",
  wv: "wq",
  wo: "wo",
  w1: "w1",
  w3: "w1",
  w2: "w2",
};

/**
 * Samples `count` sequences of `length` tokens (BOS first) from `engine` at temperature 1,
 * seeds seed, seed + 1, …: deterministic calibration text. Throws `bad_argument` for counts
 * out of range.
 */
export function sampleCalibration(engine: Engine, count = 16, length = 512, seed = 1): number[][] {
  const c = engine.config;
  check(
    Number.isInteger(count) && count >= 1 && Number.isInteger(length) && length >= 2 &&
      length <= c.maxSeqLen,
    "bad_argument",
    () => `Cannot sample calibration text: count ${count}, length ${length} (2..${c.maxSeqLen})`,
  );
  const out: number[][] = [];
  for (let s = 0; s < count; s++) {
    const sampler = new Sampler({ temperature: 1, seed: seed + s });
    const cache = engine.createCache();
    const seq = [c.bosId];
    while (seq.length < length) {
      const p = seq.length - 1;
      const h = engine.forward(cache, engine.embed([seq[p]]), p, 0, c.nLayers);
      seq.push(sampler.sample(engine.head(h)));
    }
    out.push(seq);
  }
  return out;
}

/**
 * Quantizes every matrix `plan` names with GPTQ on calibration inputs; returns them by
 * tensor name (matrices the plan keeps f32 are absent). The model must hold the embedding
 * and start at layer 0 (a device shard works; an edge shard cannot compute its inputs); a
 * shard needs `tokens`. The classifier (the embedding when tied) is calibrated only when
 * the whole model is held; matrices absent from the result are left to round-to-nearest.
 * Throws `bad_argument` for bad options or tokens.
 */
export function quantizeCalibrated(
  model: Model,
  plan: QuantPlan,
  options: CalibrationOptions = {},
): Map<string, QuantTensor> {
  const { config: c, parts } = model;
  check(
    parts.embed && parts.layers[0] === 0,
    "bad_argument",
    "Cannot calibrate: the model must hold the embedding and start at layer 0",
  );
  const whole = parts.head && parts.layers[1] === c.nLayers;
  check(
    options.tokens || whole,
    "bad_argument",
    "Cannot calibrate a shard without tokens: sampling calibration text needs the whole model",
  );
  const ref = new RefEngine(model);
  const length = Math.min(options.length ?? 512, c.maxSeqLen);
  const tokens = options.tokens ?? sampleCalibration(ref, options.count, length, options.seed);
  check(
    tokens.length > 0 && tokens.every((t) => t.length > 0 && t.length <= c.maxSeqLen),
    "bad_argument",
    `Cannot calibrate: need at least one sequence of 1..${c.maxSeqLen} tokens`,
  );
  let hess = new Map<string, Float64Array>();
  const tapped = new RefEngine(model, { tap: (name, x, n) => accumulate(hess, name, x, n) });
  const out = new Map<string, QuantTensor>();
  const factors = new Map<string, GptqFactor>(); // one per input, shared by its matrices
  const gptq = (name: string, source: string, type: QuantType | undefined) => {
    if (!type) return;
    const { data, shape } = model.tensors.get(name)!;
    let f = factors.get(source);
    if (!f) {
      f = gptqFactor(symmetric(hess.get(source)!, shape[1]), shape[1], options.damp);
      factors.set(source, f);
    }
    out.set(name, quantizeGptq(type, data, shape[0], shape[1], f));
  };
  let states = tokens.map((t) => ref.embed(t)); // [n, dim] per sequence
  for (let l = 0; l < parts.layers[1]; l++) {
    hess = new Map();
    factors.clear();
    states = states.map((x) => tapped.forward(tapped.createCache([l, l + 1]), x, 0, l, l + 1));
    for (const [m, src] of Object.entries(INPUT_OF)) {
      gptq(`layers.${l}.${m}`, `layers.${l}.${src}`, plan(`layers.${l}.${m}`, l, c));
    }
  }
  if (whole) {
    hess = new Map();
    factors.clear();
    const cls = c.tiedEmbeddings ? "embed" : "output";
    for (const x of states) tapped.head(x);
    gptq(cls, cls, plan(cls, -1, c));
  }
  return out;
}

/** hess[name] += Σ_t x_t x_tᵀ over x: [n, cols], upper triangle only (see symmetric). */
function accumulate(
  hess: Map<string, Float64Array>,
  name: string,
  x: Float32Array,
  n: number,
): void {
  const cols = x.length / n;
  let h = hess.get(name);
  if (!h) hess.set(name, h = new Float64Array(cols * cols));
  for (let t = 0; t < n; t++) {
    const o = t * cols;
    for (let i = 0; i < cols; i++) {
      const xi = x[o + i];
      if (xi === 0) continue;
      const hi = i * cols;
      for (let j = i; j < cols; j++) h[hi + j] += xi * x[o + j];
    }
  }
}

/** Copies the upper triangle of h: [n, n] onto the lower one; returns h. */
function symmetric(h: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) h[i * n + j] = h[j * n + i];
  return h;
}
