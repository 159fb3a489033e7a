/**
 * The fast engine: the reference forward pass ({@linkcode RefEngine}) on the wasm kernels,
 * with weights kept f32 or quantized at load (`q8` → q8_0; `q4` → q4_0 with the sensitive
 * matrices in q8_0, see {@linkcode weightPlan}), matmuls split across a thread pool, and the
 * KV cache in f32 inside wasm memory.
 *
 * Read {@linkcode WasmEngine.forward} beside runtime/forward.ts: the same block, on pointers.
 *
 * @example
 * ```ts
 * import { WasmEngine } from "./wasm_engine.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const engine = await WasmEngine.create(model, { quant: "q8", threads: 2 });
 * console.log(engine.name, engine.reason); // "wasm-q8x2", "relaxed SIMD + shared memory; 2 threads: …"
 * const cache = engine.createCache();
 * const logits = engine.head(engine.forward(cache, engine.embed([1]), 0, 0, model.config.nLayers));
 * engine.dispose();
 * ```
 *
 * @module
 */

import { type Kernels, loadKernels, type LoadKernelsOptions } from "../kernels/binding.ts";
import { ThreadPool } from "../kernels/pool.ts";
import { ropeFrequencies } from "../kernels/ref.ts";
import {
  checkForwardArgs,
  checkHeadArgs,
  checkTokens,
  type Engine,
  type KVCache,
} from "./engine.ts";
import { type CalibrationOptions, quantizeCalibrated, type QuantPlan } from "./calibrate.ts";
import { check, TandemError } from "./errors.ts";
import { type Model, type ModelConfig, type ModelParts, validateModel } from "./model.ts";
import type { QuantTensor } from "./quant.ts";
import { WasmCache } from "./wasm_cache.ts";
import {
  freeMatrix,
  matmul,
  readRow,
  storedType,
  uploadMatrix,
  type WasmMatrix,
  type WeightType,
} from "./wasm_weights.ts";

/** Weight precision of the wasm engine. */
export type EngineQuant = "f32" | "q8" | "q4";

/** Options of {@linkcode WasmEngine.create}. */
export interface WasmEngineOptions {
  /** Weight precision (default "f32"). */
  quant?: EngineQuant;
  /** Threads, the caller included (default 1). */
  threads?: number;
  /** How to load the kernels (e.g. a precompiled module on workerd). */
  kernels?: LoadKernelsOptions;
  /**
   * Advanced: each weight matrix's type, overriding the default mix of `quant` (see
   * {@linkcode weightPlan}). Called with the tensor name ("layers.3.wv", "embed", "output")
   * and its layer (-1 outside the layers).
   */
  plan?: WeightPlan;
  /**
   * Quantize with GPTQ on calibration text (runtime/calibrate.ts) instead of rounding to
   * nearest: same formats and speed, outputs closer to f32 (see {@linkcode weightPlan}).
   * `{}` samples the default text from the model. Costs seconds for small models, minutes
   * at 135M parameters: for big models quantize once with `quantizeCalibrated` and pass
   * `weights`.
   */
  calibration?: CalibrationOptions;
  /**
   * Matrices already quantized (e.g. by `quantizeCalibrated`), by tensor name; each must
   * have the type the plan gives it. The others are quantized at load.
   */
  weights?: ReadonlyMap<string, QuantTensor>;
}

/** Chooses the type of each weight matrix; see {@linkcode WasmEngineOptions.plan}. */
export type WeightPlan = (tensor: string, layer: number, config: ModelConfig) => WeightType;

/**
 * The default mix of each `quant` mode. Measured on stories260K (dim 64: the most
 * quantization-sensitive model there is) as top-1 agreement with the f32 reference,
 * teacher-forced along its greedy continuation of 10 prompts × 512 positions
 * (tests/wasm_engine_test.ts), with the weight bytes a decode token streams for the
 * SmolLM2-135M shape (f32: 516 MiB):
 *
 * | mode / mix                                                    | agreement | MiB/token |
 * | ------------------------------------------------------------- | --------- | --------- |
 * | q8: all q8_0, int8 activations (**default**; 98.2% with the    | 98.5%     | 144       |
 * |   tile-block kernels of 629f59c: same integers, other f32 sums) |           |           |
 * | q8: classifier with f32 activations (q8_0f)                   | 98.6%     | 144       |
 * | q8: classifier f32                                            | 98.6%     | 222       |
 * | q8: every matrix with f32 activations (q8_0f)                 | 98.7%     | 144       |
 * | q8_0 weights alone (f32 reference on dequantized q8_0)        | 98.7%     |           |
 * | q4: q4_0, classifier q8_0 (ggml's scales)                     | 82.3%     | 94        |
 * | q4: same, least-squares scales ("rmse", quant.ts)             | 83.5%     | 94        |
 * | q4: + wv, w2 q8_0 where llama.cpp's Q4_K_M gives them 6 bits  | 85.4%     | 100       |
 * | q4: + wv, w2 q8_0 in every layer                              | 87.5%     | 108       |
 * | q4: + wv, w2 and the first and last layer q8_0 (**default**)  | 89.7%     | 110       |
 * | q4: only w1, w3 in q4_0                                       | 89.7%     | 119       |
 *
 * With `calibration` (GPTQ on the model's own sampled text, 16 × 512 tokens; same formats,
 * kernels and bytes; runtime/calibrate.ts), measured on the same samples (the int8-activation
 * rows with a later kernel build, on which round-to-nearest q8 measures 98.2%):
 *
 * | mode / mix                                                    | agreement | MiB/token |
 * | ------------------------------------------------------------- | --------- | --------- |
 * | q8: default mix, GPTQ                                         | 98.3%     | 144       |
 * | q8: every matrix q8_0f (f32 activations), GPTQ                | 99.0%     | 144       |
 * | q8_0 weights alone, GPTQ (f32 reference on dequantized)       | 99.0%     |           |
 * | q4: default mix, GPTQ (least-squares scales)                  | 92.2%     | 110       |
 *
 * The differences between the q8 mixes are within the sample's noise (±0.3%: one int8
 * activation rounding that flips with the kernels' summation order changes every later
 * position), so q8 keeps the fastest. No 8-bit mix reaches 99% with int8 activations on this
 * model, whose ties are close (the reference's top two logits are within 0.03 of each other
 * at 1.5% of the 5120 positions, within 0.01 at 0.6%): the TS reference with f32 weights and
 * int8 activations alone agrees on ~98.9%, and q8_0's weight rounding acts like ±1% noise on
 * every weight (98.7% alone; GPTQ brings that to 99.0%, and SmoothQuant-style channel
 * scaling did not help: the activations have no outlier channels; more calibration text did
 * not either: 64 × 512 tokens gave 98.9%).
 * A block Hadamard rotation before rounding (rotate each block of 32 of weights and inputs
 * alike, which leaves the products unchanged), simulated on the TS reference
 * (`deno task bench quant`), moves int8 weights and activations 98.2% → 98.6%, weights alone
 * 98.7% → 99.1%, activations alone 98.8% → 99.1%, the q4 mix 88.5% → 88.6%. Only int16
 * activations on rotated q8_0 weights reach 99% there (99.06%, 3 positions above it): a format
 * no kernel runs (int16 activations would cost the relaxed int8 dot's speed), for a margin
 * inside the ±0.3% that summation order alone moves.
 * Larger models are far less sensitive. For q4, keeping the most sensitive matrices
 * (attention values, FFN down projection, first and last layer) in q8_0 as llama.cpp's
 * Q4_K_M does buys 7 points for 17% more bytes, and GPTQ 2.5 more.
 */
export function weightPlan(quant: EngineQuant): WeightPlan {
  if (quant === "f32") return () => "f32";
  if (quant === "q8") return () => "q8_0";
  return (t, l, c) =>
    t === "embed" || t === "output" || l === 0 || l === c.nLayers - 1 || /\.(wv|w2)$/.test(t)
      ? "q8_0"
      : "q4_0";
}

/** The quantized types of a weight plan (q8_0f stores q8_0; f32 is left out). */
function quantPlan(plan: WeightPlan): QuantPlan {
  return (t, l, c) => storedType(plan(t, l, c));
}

/** One layer's weights in wasm memory (norms and biases are f32 pointers, 0 when absent). */
interface Layer {
  attnNorm: number;
  ffnNorm: number;
  wq: WasmMatrix;
  wk: WasmMatrix;
  wv: WasmMatrix;
  wo: WasmMatrix;
  w1: WasmMatrix;
  w2: WasmMatrix;
  w3: WasmMatrix;
  bq: number;
  bk: number;
  bv: number;
}

/** Per-call buffers, sized for n tokens and a context of ctx. */
interface Workspace {
  n: number;
  ctx: number;
  h: number; //       [n, dim]
  xb: number; //      [n, dim]
  q: number; //       [n, qDim]
  att: number; //     [n, qDim]
  proj: number; //    [n, dim]
  gate: number; //    [n, hidden]
  up: number; //      [n, hidden]
  act: number; //     quantized activations of [n, max(dim, qDim, hidden)]
  cs: number; //      [n, headDim / 2, 2] cos, sin
  scores: number; //  [nHeads, ctx]
}

/** The Engine on the wasm kernels. */
export class WasmEngine implements Engine {
  /** The full model's hyper-parameters. */
  readonly config: ModelConfig;
  /** The parts this engine holds. */
  readonly parts: ModelParts;
  /** Diagnostic name, e.g. "wasm-q8x2". */
  readonly name: string;
  /** What was chosen (kernel build, threads) and why. */
  readonly reason: string;
  /** The kernels (memory, allocator). */
  readonly kernels: Kernels;
  readonly #pool: ThreadPool;
  readonly #layers = new Map<number, Layer>();
  readonly #embed?: WasmMatrix;
  readonly #cls?: WasmMatrix;
  readonly #norm: number = 0;
  readonly #freqs: Float32Array;
  #ws?: Workspace;

  private constructor(
    model: Model,
    k: Kernels,
    pool: ThreadPool,
    quant: EngineQuant,
    plan: WeightPlan,
    weights: ReadonlyMap<string, QuantTensor>,
    calibrated: boolean,
  ) {
    this.config = model.config;
    this.parts = model.parts;
    this.kernels = k;
    this.#pool = pool;
    this.name = `wasm-${quant}x${pool.threads}`;
    this.reason = `${k.reason}; ${pool.reason}${calibrated ? "; GPTQ-calibrated weights" : ""}`;
    const t = (name: string) => model.tensors.get(name)!;
    const mat = (name: string, layer = -1) => {
      const { data, shape } = t(name);
      const type = plan(name, layer, model.config);
      return uploadMatrix(k, data, shape[0], shape[1], type, weights.get(name));
    };
    const vec = (name: string) => model.tensors.has(name) ? k.put(t(name).data) : 0;
    for (let l = model.parts.layers[0]; l < model.parts.layers[1]; l++) {
      const p = `layers.${l}.`;
      this.#layers.set(l, {
        attnNorm: vec(p + "attn_norm"),
        ffnNorm: vec(p + "ffn_norm"),
        wq: mat(p + "wq", l),
        wk: mat(p + "wk", l),
        wv: mat(p + "wv", l),
        wo: mat(p + "wo", l),
        w1: mat(p + "w1", l),
        w2: mat(p + "w2", l),
        w3: mat(p + "w3", l),
        bq: vec(p + "bq"),
        bk: vec(p + "bk"),
        bv: vec(p + "bv"),
      });
    }
    if (model.tensors.has("embed")) this.#embed = mat("embed");
    if (this.parts.head) {
      this.#norm = vec("norm");
      if (!this.config.tiedEmbeddings) this.#cls = mat("output");
    }
    const c = this.config;
    this.#freqs = ropeFrequencies(c.headDim, c.ropeTheta, c.ropeScaling);
  }

  /**
   * Loads the kernels, starts the pool and uploads (quantizing) the weights. Throws
   * `bad_model` for an invalid model and `bad_argument` for bad options.
   */
  static async create(model: Model, options: WasmEngineOptions = {}): Promise<WasmEngine> {
    const { quant = "f32", threads = 1 } = options;
    if (!["f32", "q8", "q4"].includes(quant)) {
      throw new TandemError(
        "bad_argument",
        `Cannot create an engine: quant must be f32, q8 or q4, got ${quant}`,
      );
    }
    if (!(Number.isInteger(threads) && threads >= 1 && threads <= 256)) {
      throw new TandemError(
        "bad_argument",
        `Cannot create an engine: threads must be 1..256, got ${threads}`,
      );
    }
    validateModel(model);
    const plan = options.plan ?? weightPlan(quant);
    let weights = options.weights ?? new Map<string, QuantTensor>();
    if (options.calibration) {
      check(
        !options.weights,
        "bad_argument",
        "Cannot create an engine with both `weights` and `calibration`: pass the weights a calibration produced, or calibrate here",
      );
      weights = quantizeCalibrated(model, quantPlan(plan), options.calibration);
    }
    const k = await loadKernels(options.kernels);
    const pool = await ThreadPool.create(k, threads);
    const calibrated = weights.size > 0;
    return new WasmEngine(model, k, pool, quant, plan, weights, calibrated);
  }

  /** Weight bytes one decode token streams: every held layer's matrices and the classifier. */
  get decodeBytes(): number {
    let b = 0;
    for (const w of this.#layers.values()) {
      for (const m of [w.wq, w.wk, w.wv, w.wo, w.w1, w.w2, w.w3]) b += m.bytes;
    }
    const cls = this.config.tiedEmbeddings ? this.#embed : this.#cls;
    if (this.parts.head && cls) b += cls.bytes;
    return b;
  }

  /** Creates an empty cache for layers [from, to) (default: all held layers). */
  createCache(layers: readonly [number, number] = this.parts.layers): WasmCache {
    return new WasmCache(this.kernels, this.config, layers);
  }

  /** Token embeddings [n, dim] (dequantized rows when the table is quantized). */
  embed(tokens: ArrayLike<number>): Float32Array {
    const e = this.#embed;
    if (!this.parts.embed || !e) {
      throw new TandemError("bad_argument", "Cannot embed: this shard holds no token embedding");
    }
    checkTokens(this.config, tokens);
    const dim = this.config.dim;
    const out = new Float32Array(tokens.length * dim);
    for (let t = 0; t < tokens.length; t++) {
      readRow(this.kernels, e, tokens[t], out.subarray(t * dim, (t + 1) * dim));
    }
    return out;
  }

  /**
   * Runs layers [from, to) on x: [n, dim] at positions pos..pos+n-1; returns [n, dim].
   * The same block as RefEngine.forward, each step one kernel call on wasm pointers.
   */
  forward(cache: KVCache, x: Float32Array, pos: number, from: number, to: number): Float32Array {
    const n = checkForwardArgs(this, cache, x, pos, from, to);
    if (!(cache instanceof WasmCache) || !cache.belongsTo(this.kernels)) {
      throw new TandemError(
        "bad_argument",
        "Cannot run layers: the cache was not created by this engine",
      );
    }
    const { dim, hiddenDim, nHeads, nKvHeads, headDim, normEps } = this.config;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    cache.ensure(pos + n);
    const ws = this.#workspace(n, pos + n);
    const k = this.kernels;
    const e = k.exports;
    const pool = this.#pool;
    k.f32(ws.h, n * dim).set(x);
    this.#rotations(ws.cs, n, pos);
    const attWork = n * nHeads * (pos + n) * headDim * 2;

    for (let l = from; l < to; l++) {
      const w = this.#layers.get(l)!;
      const kc = cache.keys[l - cache.layers[0]]; //   [capacity, kvDim]
      const vc = cache.values[l - cache.layers[0]]; // [capacity, kvDim]
      const kNew = kc + pos * kvDim * 4; //              [n, kvDim]
      const vNew = vc + pos * kvDim * 4; //              [n, kvDim]

      // Attention block: xb = rmsnorm(h); q, k, v = W xb; rotate q, k; h += wo · attn(q, K, V)
      e.rmsnorm(ws.xb, ws.h, w.attnNorm, n, dim, normEps);
      this.#quantize(ws.xb, n, dim, w.wq, w.wk, w.wv);
      matmul(pool, ws.q, ws.xb, ws.act, w.wq, n, w.bq); //   wq: [qDim, dim]
      matmul(pool, kNew, ws.xb, ws.act, w.wk, n, w.bk); //   wk: [kvDim, dim], into the cache
      matmul(pool, vNew, ws.xb, ws.act, w.wv, n, w.bv); //   wv: [kvDim, dim], into the cache
      e.rope(ws.q, ws.cs, n, nHeads, headDim);
      e.rope(kNew, ws.cs, n, nKvHeads, headDim);
      pool.run(
        "attention",
        [ws.att, ws.q, kc, vc, ws.scores, n, pos, nHeads, nKvHeads, headDim],
        nHeads,
        attWork,
        1,
      );
      this.#quantize(ws.att, n, qDim, w.wo);
      matmul(pool, ws.proj, ws.att, ws.act, w.wo, n); //     wo: [dim, qDim]
      e.add(ws.h, ws.proj, n * dim);

      // Feed-forward block: xb = rmsnorm(h); h += w2 · (silu(w1 xb) * w3 xb)
      e.rmsnorm(ws.xb, ws.h, w.ffnNorm, n, dim, normEps);
      this.#quantize(ws.xb, n, dim, w.w1, w.w3);
      matmul(pool, ws.gate, ws.xb, ws.act, w.w1, n); //      w1: [hidden, dim]
      matmul(pool, ws.up, ws.xb, ws.act, w.w3, n); //        w3: [hidden, dim]
      e.swiglu(ws.gate, ws.gate, ws.up, n * hiddenDim);
      this.#quantize(ws.gate, n, hiddenDim, w.w2);
      matmul(pool, ws.proj, ws.gate, ws.act, w.w2, n); //    w2: [dim, hidden]
      e.add(ws.h, ws.proj, n * dim);
    }
    return k.f32(ws.h, n * dim).slice();
  }

  /** Final RMSNorm and classifier: logits [n, vocab]. */
  head(x: Float32Array): Float32Array {
    const { dim, vocabSize, normEps } = this.config;
    const cls = this.config.tiedEmbeddings ? this.#embed : this.#cls;
    const n = checkHeadArgs(this, x, cls !== undefined);
    const k = this.kernels;
    const ws = this.#workspace(n, 0);
    const logits = k.alloc(n * vocabSize * 4);
    k.f32(ws.h, n * dim).set(x);
    k.exports.rmsnorm(ws.xb, ws.h, this.#norm, n, dim, normEps);
    this.#quantize(ws.xb, n, dim, cls!); // checked above
    matmul(this.#pool, logits, ws.xb, ws.act, cls!, n); // classifier: [vocab, dim]
    const out = k.f32(logits, n * vocabSize).slice();
    k.free(logits);
    return out;
  }

  /** Frees the weights, buffers and workers (caches of this engine become unusable). */
  dispose(): void {
    this.#pool.dispose();
    const k = this.kernels;
    for (const w of this.#layers.values()) {
      for (const m of [w.wq, w.wk, w.wv, w.wo, w.w1, w.w2, w.w3]) freeMatrix(k, m);
      for (const p of [w.attnNorm, w.ffnNorm, w.bq, w.bk, w.bv]) k.free(p);
    }
    this.#layers.clear();
    for (const m of [this.#embed, this.#cls]) if (m) freeMatrix(k, m);
    k.free(this.#norm);
    this.#freeWorkspace();
  }

  #freeWorkspace(): void {
    const ws = this.#ws;
    if (!ws) return;
    for (
      const p of [ws.h, ws.xb, ws.q, ws.att, ws.proj, ws.gate, ws.up, ws.act, ws.cs, ws.scores]
    ) {
      this.kernels.free(p);
    }
    this.#ws = undefined;
  }

  /** Quantizes x: [n, din] into the workspace's activation buffer if any of `ws` wants it. */
  #quantize(x: number, n: number, din: number, ...ws: WasmMatrix[]): void {
    if (ws.some((w) => w.type !== "f32" && !w.f32Act)) {
      this.kernels.exports.quantize_act(this.#ws!.act, x, n, din);
    }
  }

  /** Writes (cos, sin) of (pos + t) * freqs[j] into cs: [n, headDim / 2, 2]. */
  #rotations(cs: number, n: number, pos: number): void {
    const half = this.config.headDim / 2;
    const v = this.kernels.f32(cs, n * half * 2);
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < half; j++) {
        const angle = (pos + t) * this.#freqs[j];
        v[(t * half + j) * 2] = Math.cos(angle);
        v[(t * half + j) * 2 + 1] = Math.sin(angle);
      }
    }
  }

  /** The per-call buffers, reallocated only when n or ctx outgrow them. */
  #workspace(n: number, ctx: number): Workspace {
    const ws = this.#ws;
    if (ws && ws.n >= n && ws.ctx >= ctx) return ws;
    if (ws) this.#freeWorkspace();
    const { dim, hiddenDim, nHeads, headDim } = this.config;
    const k = this.kernels;
    const N = Math.max(n, ws?.n ?? 0);
    const C = Math.max(ctx, ws?.ctx ?? 0, 64);
    const qDim = nHeads * headDim;
    const f = (len: number) => k.alloc(len * 4);
    this.#ws = {
      n: N,
      ctx: C,
      h: f(N * dim),
      xb: f(N * dim),
      q: f(N * qDim),
      att: f(N * qDim),
      proj: f(N * dim),
      gate: f(N * hiddenDim),
      up: f(N * hiddenDim),
      act: k.alloc(k.exports.act_bytes(N, Math.max(dim, qDim, hiddenDim))),
      cs: f(N * headDim),
      scores: f(nHeads * C),
    };
    return this.#ws;
  }
}
