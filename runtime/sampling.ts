/**
 * Turning logits into a token: greedy, temperature, top-k and top-p (nucleus) sampling with
 * a seeded, portable random number generator (same seed → same tokens on every host).
 *
 * @example
 * ```ts
 * import { Sampler } from "./sampling.ts";
 * const s = new Sampler({ temperature: 0.8, topP: 0.9, seed: 42 });
 * const token = s.sample(new Float32Array([0.1, 2.5, -1]));
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";

/** Sampling settings. `temperature: 0` (the default) is greedy. */
export interface SamplerOptions {
  /** Softmax temperature; 0 means greedy (argmax). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability sums to at least p (1 = off). */
  topP?: number;
  /** Seed of the random number generator. */
  seed?: number;
}

/** A small, fast, seeded PRNG (xorshift32 mixed by a multiply) returning floats in [0, 1). */
export class Rng {
  #state: number;
  /** Seeds the generator; any integer (0 is remapped). */
  constructor(seed = 1) {
    this.#state = (seed >>> 0) || 0x9e3779b9;
  }
  /** Next float in [0, 1). */
  next(): number {
    let x = this.#state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.#state = x;
    return (Math.imul(x, 0x2545f491) >>> 8) / 16777216;
  }
}

/** Index of the largest value (first on ties). */
export function argmax(x: ArrayLike<number>, off = 0, len: number = x.length - off): number {
  let best = 0;
  let max = -Infinity;
  for (let i = 0; i < len; i++) {
    if (x[off + i] > max) {
      max = x[off + i];
      best = i;
    }
  }
  return best;
}

/** Picks the next token from a row of logits. */
export class Sampler {
  /** The validated settings. */
  readonly options: Required<SamplerOptions>;
  readonly #rng: Rng;

  /** Validates the settings; throws `bad_argument` for out-of-range values. */
  constructor(options: SamplerOptions = {}) {
    const o = { temperature: 0, topK: 0, topP: 1, seed: 1, ...options };
    if (!(Number.isFinite(o.temperature) && o.temperature >= 0)) {
      throw new TandemError("bad_argument", `temperature must be >= 0, got ${o.temperature}`);
    }
    if (!(Number.isInteger(o.topK) && o.topK >= 0)) {
      throw new TandemError("bad_argument", `topK must be a whole number >= 0, got ${o.topK}`);
    }
    if (!(o.topP > 0 && o.topP <= 1)) {
      throw new TandemError("bad_argument", `topP must be in (0, 1], got ${o.topP}`);
    }
    if (!Number.isInteger(o.seed)) {
      throw new TandemError("bad_argument", `seed must be an integer, got ${o.seed}`);
    }
    this.options = o;
    this.#rng = new Rng(o.seed);
  }

  /** Whether this sampler always picks the argmax. */
  get greedy(): boolean {
    return this.options.temperature === 0 || this.options.topK === 1;
  }

  /** Samples one token from logits[off .. off+vocab). */
  sample(logits: Float32Array, off = 0, vocab: number = logits.length - off): number {
    if (this.greedy) return argmax(logits, off, vocab);
    const { temperature, topK, topP } = this.options;
    let idx = Array.from({ length: vocab }, (_, i) => i);
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) max = Math.max(max, logits[off + i]);
    const p = new Float64Array(vocab);
    let sum = 0;
    for (let i = 0; i < vocab; i++) {
      p[i] = Math.exp((logits[off + i] - max) / temperature);
      sum += p[i];
    }
    for (let i = 0; i < vocab; i++) p[i] /= sum;
    if (topK > 0 || topP < 1) {
      idx.sort((a, b) => p[b] - p[a] || a - b);
      if (topK > 0) idx = idx.slice(0, topK);
      if (topP < 1) {
        let acc = 0;
        let cut = idx.length;
        for (let i = 0; i < idx.length; i++) {
          acc += p[idx[i]];
          if (acc >= topP) {
            cut = i + 1;
            break;
          }
        }
        idx = idx.slice(0, cut);
      }
    }
    let mass = 0;
    for (const i of idx) mass += p[i];
    const r = this.#rng.next() * mass;
    let acc = 0;
    for (const i of idx) {
      acc += p[i];
      if (r < acc) return i;
    }
    return idx[idx.length - 1];
  }
}
