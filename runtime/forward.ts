/**
 * The reference forward pass: a Llama decoder in plain TypeScript f32, one layer range at a
 * time. Read {@linkcode RefEngine.forward} top to bottom to see the whole transformer block.
 *
 * @example
 * ```ts
 * import { RefEngine } from "./forward.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model; // from loadLlama2c(...) or loadHf(...)
 * const engine = new RefEngine(model);
 * const cache = engine.createCache();
 * const x = engine.embed([1]);                                  // [1, dim]
 * const h = engine.forward(cache, x, 0, 0, model.config.nLayers); // [1, dim]
 * const logits = engine.head(h);                                  // [1, vocab]
 * ```
 *
 * @module
 */

import * as k from "../kernels/ref.ts";
import {
  checkForwardArgs,
  checkHeadArgs,
  checkTokens,
  type Engine,
  type KVCache,
} from "./engine.ts";
import { TandemError } from "./errors.ts";
import { type Model, type ModelConfig, type ModelParts, validateModel } from "./model.ts";

/** The reference engine's cache: per layer, keys and values [capacity, kvDim], grown on demand. */
export class RefCache implements KVCache {
  /** The layers this cache holds, [from, to). */
  readonly layers: readonly [number, number];
  /** Keys per held layer: [capacity, kvDim]. */
  keys: Float32Array[];
  /** Values per held layer: [capacity, kvDim]. */
  values: Float32Array[];
  /** Positions that fit before the arrays must grow. */
  capacity = 0;
  readonly #kvDim: number;
  readonly #maxSeqLen: number;

  /** Creates an empty cache for `layers` of a model with this config. */
  constructor(config: ModelConfig, layers: readonly [number, number]) {
    this.layers = layers;
    this.#kvDim = config.nKvHeads * config.headDim;
    this.#maxSeqLen = config.maxSeqLen;
    this.keys = [];
    this.values = [];
  }

  /** Bytes allocated. */
  get bytes(): number {
    return 2 * (this.layers[1] - this.layers[0]) * this.capacity * this.#kvDim * 4;
  }

  /** Makes room for positions [0, len); keeps what is stored. */
  ensure(len: number): void {
    if (len <= this.capacity) return;
    const cap = Math.min(this.#maxSeqLen, Math.max(len, 2 * this.capacity, 64));
    const grow = (old: Float32Array | undefined) => {
      const a = new Float32Array(cap * this.#kvDim);
      if (old) a.set(old);
      return a;
    };
    const count = this.layers[1] - this.layers[0];
    for (let l = 0; l < count; l++) {
      this.keys[l] = grow(this.keys[l]);
      this.values[l] = grow(this.values[l]);
    }
    this.capacity = cap;
  }
}

/** Weights of one layer, looked up once. */
interface LayerWeights {
  attnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  ffnNorm: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
}

/** Options of {@linkcode RefEngine}. */
export interface RefEngineOptions {
  /**
   * Called before each matmul's input is used, with the name of the weight matrix that reads
   * it ("layers.3.wq" also stands for wk and wv, "layers.3.w1" for w3; the classifier is
   * "output", or "embed" when tied) and the input x: [n, cols]. For calibration
   * (runtime/calibrate.ts); x is the engine's buffer, valid during the call only.
   */
  tap?: (tensor: string, x: Float32Array, n: number) => void;
}

/** The plain TypeScript f32 engine: the specification of every faster engine. */
export class RefEngine implements Engine {
  /** The full model's hyper-parameters. */
  readonly config: ModelConfig;
  /** The parts this engine holds. */
  readonly parts: ModelParts;
  /** Diagnostic name. */
  readonly name = "ref-f32";
  readonly #model: Model;
  readonly #layers: Map<number, LayerWeights> = new Map();
  readonly #freqs: Float32Array;
  readonly #tap?: RefEngineOptions["tap"];

  /** Wraps a validated model. Throws `bad_model` if tensors are missing or mis-shaped. */
  constructor(model: Model, options: RefEngineOptions = {}) {
    validateModel(model);
    this.#model = model;
    this.#tap = options.tap;
    this.config = model.config;
    this.parts = model.parts;
    const get = (name: string) => model.tensors.get(name)?.data as Float32Array;
    for (let l = model.parts.layers[0]; l < model.parts.layers[1]; l++) {
      const p = `layers.${l}.`;
      this.#layers.set(l, {
        attnNorm: get(p + "attn_norm"),
        wq: get(p + "wq"),
        wk: get(p + "wk"),
        wv: get(p + "wv"),
        wo: get(p + "wo"),
        bq: model.tensors.get(p + "bq")?.data,
        bk: model.tensors.get(p + "bk")?.data,
        bv: model.tensors.get(p + "bv")?.data,
        ffnNorm: get(p + "ffn_norm"),
        w1: get(p + "w1"),
        w2: get(p + "w2"),
        w3: get(p + "w3"),
      });
    }
    const c = this.config;
    this.#freqs = k.ropeFrequencies(c.headDim, c.ropeTheta, c.ropeScaling);
  }

  /** Creates an empty cache for layers [from, to) (default: all held layers). */
  createCache(layers: readonly [number, number] = this.parts.layers): RefCache {
    return new RefCache(this.config, layers);
  }

  /** Token embeddings [n, dim]. */
  embed(tokens: ArrayLike<number>): Float32Array {
    const embed = this.#model.tensors.get("embed");
    if (!this.parts.embed || !embed) {
      throw new TandemError("bad_argument", "Cannot embed: this shard holds no token embedding");
    }
    checkTokens(this.config, tokens);
    const dim = this.config.dim;
    const out = new Float32Array(tokens.length * dim);
    for (let t = 0; t < tokens.length; t++) {
      out.set(embed.data.subarray(tokens[t] * dim, (tokens[t] + 1) * dim), t * dim);
    }
    return out;
  }

  /** Runs layers [from, to) on x: [n, dim] at positions pos..pos+n-1. */
  forward(cache: KVCache, x: Float32Array, pos: number, from: number, to: number): Float32Array {
    const c = cache as RefCache;
    const n = checkForwardArgs(this, c, x, pos, from, to);
    const { dim, hiddenDim, nHeads, nKvHeads, headDim, normEps } = this.config;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    c.ensure(pos + n);

    const h = x.slice(); //                      residual stream [n, dim]
    const xb = new Float32Array(n * dim); //     normed input   [n, dim]
    const q = new Float32Array(n * qDim); //     queries        [n, qDim]
    const att = new Float32Array(n * qDim); //   attention out  [n, qDim]
    const proj = new Float32Array(n * dim); //   projections    [n, dim]
    const gate = new Float32Array(n * hiddenDim); // w1 x      [n, hidden]
    const up = new Float32Array(n * hiddenDim); //   w3 x      [n, hidden]
    const scratch = new Float32Array(pos + n); // attention scores [ctx]

    for (let l = from; l < to; l++) {
      const w = this.#layers.get(l)!;
      const keys = c.keys[l - c.layers[0]]; //   [capacity, kvDim]
      const values = c.values[l - c.layers[0]]; // [capacity, kvDim]
      const kNew = keys.subarray(pos * kvDim, (pos + n) * kvDim); //   [n, kvDim]
      const vNew = values.subarray(pos * kvDim, (pos + n) * kvDim); // [n, kvDim]

      // Attention block: xb = rmsnorm(h); q, k, v = W xb; rotate q, k; h += wo · attn(q, K, V)
      k.rmsnorm(xb, h, w.attnNorm, n, dim, normEps);
      this.#tap?.(`layers.${l}.wq`, xb, n);
      k.matmul(q, xb, w.wq, n, dim, qDim, w.bq); //    wq: [qDim, dim]
      k.matmul(kNew, xb, w.wk, n, dim, kvDim, w.bk); // wk: [kvDim, dim], written into the cache
      k.matmul(vNew, xb, w.wv, n, dim, kvDim, w.bv); // wv: [kvDim, dim], written into the cache
      k.rope(q, n, nHeads, headDim, pos, this.#freqs);
      k.rope(kNew, n, nKvHeads, headDim, pos, this.#freqs);
      k.attention(att, q, keys, values, n, pos, nHeads, nKvHeads, headDim, scratch);
      this.#tap?.(`layers.${l}.wo`, att, n);
      k.matmul(proj, att, w.wo, n, qDim, dim); //      wo: [dim, qDim]
      k.add(h, proj, n * dim);

      // Feed-forward block: xb = rmsnorm(h); h += w2 · (silu(w1 xb) * w3 xb)
      k.rmsnorm(xb, h, w.ffnNorm, n, dim, normEps);
      this.#tap?.(`layers.${l}.w1`, xb, n);
      k.matmul(gate, xb, w.w1, n, dim, hiddenDim); //  w1: [hidden, dim]
      k.matmul(up, xb, w.w3, n, dim, hiddenDim); //    w3: [hidden, dim]
      k.swiglu(gate, gate, up, n * hiddenDim);
      this.#tap?.(`layers.${l}.w2`, gate, n);
      k.matmul(proj, gate, w.w2, n, hiddenDim, dim); // w2: [dim, hidden]
      k.add(h, proj, n * dim);
    }
    return h;
  }

  /** Final RMSNorm and classifier: logits [n, vocab]. */
  head(x: Float32Array): Float32Array {
    const { dim, vocabSize, normEps } = this.config;
    const n = checkHeadArgs(this, x);
    const norm = this.#model.tensors.get("norm")!.data;
    const clsName = this.config.tiedEmbeddings ? "embed" : "output";
    const cls = this.#model.tensors.get(clsName)!.data;
    const xb = new Float32Array(n * dim);
    k.rmsnorm(xb, x, norm, n, dim, normEps);
    this.#tap?.(clsName, xb, n);
    const logits = new Float32Array(n * vocabSize);
    k.matmul(logits, xb, cls, n, dim, vocabSize); // classifier: [vocab, dim]
    return logits;
  }

  /** Nothing to free: the reference engine holds only JS arrays. */
  dispose(): void {}
}
