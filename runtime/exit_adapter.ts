/**
 * Exit adapters: a small trained map that makes the device's early-exit head a better drafter.
 *
 * The early-exit head (final norm + classifier applied to the hidden state after layer K) was
 * never trained to read layer K's residual stream, so its guesses disagree with the whole
 * model often (stories260K, K = 4 of 5: about half the time). Every disagreement costs
 * self-speculation or draft streaming a round trip. An exit adapter puts one affine map in
 * front of the head, fitted by distillation to the whole model's own greedy tokens
 * (a Kangaroo/LayerSkip-style draft head, reduced to its cheapest form):
 *
 * ```text
 * draft logits = head(W · rmsnorm(h_K) + b)      W: [dim, dim], b: [dim]
 * ```
 *
 * It costs dim² multiply-adds per drafted row (a fraction of one layer) and changes no output:
 * drafts are only ever proposals that the edge verifies. `W = I, b = 0` is the plain head.
 *
 * Fitting ({@linkcode fitExitAdapter}) is deterministic: the model samples its own calibration
 * text (seeded, as `calibrate.ts` does), the f32 reference gives the states after layer K and
 * the whole model's greedy token at every position, and Adam minimizes the cross-entropy of
 * the adapter's logits against that token over the whole model's top `candidates` tokens
 * (all of a small vocabulary; a large one would make every step cost a full classifier).
 * Stored as safetensors (`exit.K.weight`, `exit.K.bias`; {@linkcode serializeExitAdapters}).
 *
 * @example
 * ```ts
 * import { applyExitAdapter, fitExitAdapter } from "./exit_adapter.ts";
 * import { RefEngine } from "./forward.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model; declare const rowAfterLayer4: Float32Array;
 * const adapter = fitExitAdapter(model, 4, { count: 8, length: 256 });
 * const logits = new RefEngine(model).head(applyExitAdapter(adapter, rowAfterLayer4));
 * ```
 *
 * @module
 */

import { sampleCalibration } from "./calibrate.ts";
import type { Engine } from "./engine.ts";
import { check, TandemError } from "./errors.ts";
import { parseSafetensors } from "./formats/safetensors.ts";
import { serializeSafetensors } from "./formats/safetensors_write.ts";
import { RefEngine } from "./forward.ts";
import { headFlops, type Model, type ModelConfig, type Tensor } from "./model.ts";
import { argmax, Rng } from "./sampling.ts";

/** An affine map applied to the hidden state after layer `split`, before the early-exit head. */
export interface ExitAdapter {
  /** The layer boundary it reads: the state after layers [0, split). */
  readonly split: number;
  /** Hidden size. */
  readonly dim: number;
  /** [dim, dim], row-major: y_j = Σ_i weight[j·dim + i] · rmsnorm(h)_i + bias_j. */
  readonly weight: Float32Array;
  /** [dim]. */
  readonly bias: Float32Array;
}

/** Multiply-adds (× 2 = FLOPs) of applying an adapter to one row. */
export function exitAdapterFlops(dim: number): number {
  return 2 * dim * dim + 4 * dim;
}

/**
 * FLOPs of one draft: the early-exit head, and the adapter in front of it when there is one.
 *
 * @example
 * ```ts
 * import { draftHeadFlops } from "./exit_adapter.ts";
 * import type { ModelConfig } from "./model.ts";
 * declare const config: ModelConfig;
 * console.log(draftHeadFlops(config)); // the head alone
 * ```
 */
export function draftHeadFlops(config: ModelConfig, adapter?: ExitAdapter): number {
  return headFlops(config) + (adapter ? exitAdapterFlops(config.dim) : 0);
}

const EPS = 1e-5;

/**
 * The adapted rows of hidden states `rows` ([n, dim], after layer `adapter.split`): feed the
 * result to the engine's `head` for draft logits. Throws `bad_argument` when the rows do not
 * have the adapter's width.
 *
 * @example
 * ```ts
 * import { applyExitAdapter, identityExitAdapter } from "./exit_adapter.ts";
 * const a = identityExitAdapter(2, 4);
 * console.log(applyExitAdapter(a, new Float32Array([2, 2, 2, 2]))); // [1, 1, 1, 1]
 * ```
 */
export function applyExitAdapter(adapter: ExitAdapter, rows: Float32Array): Float32Array {
  const { dim, weight: w, bias } = adapter;
  check(
    rows.length > 0 && rows.length % dim === 0,
    "bad_argument",
    () => `Cannot apply the exit adapter: ${rows.length} values are not rows of width ${dim}`,
  );
  const n = rows.length / dim;
  const out = new Float32Array(rows.length);
  const f = new Float32Array(dim);
  for (let r = 0; r < n; r++) {
    normalize(rows, r * dim, dim, f);
    for (let j = 0; j < dim; j++) {
      let s = bias[j];
      const wj = j * dim;
      for (let i = 0; i < dim; i++) s += w[wj + i] * f[i];
      out[r * dim + j] = s;
    }
  }
  return out;
}

/**
 * Draft logits of rows after layer K: the engine's head, through `adapter` when given.
 * Throws `bad_argument` when the adapter was fitted for another split or width.
 *
 * @example
 * ```ts
 * import { draftLogits } from "./exit_adapter.ts";
 * import type { Engine } from "./engine.ts";
 * declare const device: Engine; declare const row: Float32Array;
 * console.log(draftLogits(device, row, 4).length); // vocab
 * ```
 */
export function draftLogits(
  engine: Engine,
  rows: Float32Array,
  split: number,
  adapter?: ExitAdapter,
): Float32Array {
  if (!adapter) return engine.head(rows);
  checkExitAdapter(adapter, split, engine.config.dim);
  return engine.head(applyExitAdapter(adapter, rows));
}

/** Throws `bad_argument` unless `adapter` reads the state after layer `split` of width `dim`. */
export function checkExitAdapter(adapter: ExitAdapter, split: number, dim: number): void {
  check(
    adapter.split === split && adapter.dim === dim && adapter.weight.length === dim * dim &&
      adapter.bias.length === dim,
    "bad_argument",
    () =>
      `Cannot draft with the exit adapter: it reads layer ${adapter.split} at width ${adapter.dim}, the device drafts after layer ${split} at width ${dim}`,
  );
}

/**
 * The adapter that changes nothing (W = I, b = 0): the plain early-exit head.
 *
 * @example
 * ```ts
 * import { identityExitAdapter } from "./exit_adapter.ts";
 * console.log(identityExitAdapter(4, 64).weight.length); // 4096
 * ```
 */
export function identityExitAdapter(split: number, dim: number): ExitAdapter {
  const weight = new Float32Array(dim * dim);
  for (let i = 0; i < dim; i++) weight[i * dim + i] = 1;
  return { split, dim, weight, bias: new Float32Array(dim) };
}

/** Options of {@linkcode fitExitAdapter}. */
export interface FitExitOptions {
  /** Training token sequences; default: `count` × `length` tokens the model samples. */
  tokens?: readonly (readonly number[])[];
  /** Sequences to sample when `tokens` is absent (default 16). */
  count?: number;
  /** Tokens per sampled sequence, BOS included (default 256). */
  length?: number;
  /** Seed of the sampler and of the training order (default 1). */
  seed?: number;
  /** Passes over the training positions (default 6). */
  epochs?: number;
  /** Adam's step size (default 0.01). */
  learningRate?: number;
  /** Positions per step (default 128). */
  batch?: number;
  /** The whole model's top tokens per position the loss is taken over (default min(vocab, 512)). */
  candidates?: number;
}

/** What {@linkcode fitExitAdapter} returns: the adapter and its agreement on its training text. */
export interface FittedExitAdapter {
  /** The fitted adapter. */
  adapter: ExitAdapter;
  /** Top-1 agreement with the whole model on the training positions, plain head. */
  plainAgreement: number;
  /** The same with the adapter. */
  agreement: number;
}

/** One training position: the normalized state after layer K and the candidate tokens. */
interface Sample {
  f: Float32Array; //  rmsnorm(h_K) without gain, [dim]
  cand: Int32Array; // the whole model's top tokens, its greedy token first
}

/**
 * Fits an exit adapter for the early-exit head after layer `split` of `model` (which must be
 * whole: the whole model is the teacher). Deterministic for the same model and options.
 * Throws `bad_argument` for a split outside 1..L−1 or bad options.
 *
 * @example
 * ```ts
 * import { fitExitAdapter } from "./exit_adapter.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const { adapter, plainAgreement, agreement } = fitExitAdapter(model, 4);
 * console.log(adapter.split, plainAgreement, agreement);
 * ```
 */
export function fitExitAdapter(
  model: Model,
  split: number,
  options: FitExitOptions = {},
): FittedExitAdapter {
  const c = model.config;
  const { dim, vocabSize: V, nLayers: L } = c;
  check(
    model.parts.embed && model.parts.head && model.parts.layers[0] === 0 &&
      model.parts.layers[1] === L,
    "bad_argument",
    "Cannot fit an exit adapter: the model must be whole (the whole model is the teacher)",
  );
  check(
    Number.isInteger(split) && split >= 1 && split < L,
    "bad_argument",
    () => `Cannot fit an exit adapter after layer ${split}: the model has layers 1..${L - 1}`,
  );
  const epochs = options.epochs ?? 6;
  const lr = options.learningRate ?? 0.01;
  const batch = options.batch ?? 128;
  const C = Math.min(V, options.candidates ?? 512);
  check(
    Number.isInteger(epochs) && epochs >= 0 && lr > 0 && Number.isInteger(batch) && batch >= 1 &&
      Number.isInteger(C) && C >= 2,
    "bad_argument",
    () =>
      `Cannot fit an exit adapter: epochs ${epochs}, learning rate ${lr}, batch ${batch}, candidates ${C}`,
  );
  const engine = new RefEngine(model);
  const seed = options.seed ?? 1;
  const tokens = options.tokens ??
    sampleCalibration(
      engine,
      options.count ?? 16,
      Math.min(options.length ?? 256, c.maxSeqLen),
      seed,
    );
  const samples = collect(engine, tokens, split, C);
  check(samples.length > 0, "bad_argument", "Cannot fit an exit adapter: no training positions");

  const gain = model.tensors.get("norm")!.data;
  const cls = model.tensors.get(c.tiedEmbeddings ? "embed" : "output")!.data; // [vocab, dim]
  const adapter = identityExitAdapter(split, dim);
  const w = adapter.weight, b = adapter.bias;
  const P = dim * dim + dim; // parameters: W then b
  const grad = new Float64Array(P), m = new Float64Array(P), v = new Float64Array(P);
  const y = new Float64Array(dim), dz = new Float64Array(dim), dy = new Float64Array(dim);
  const logits = new Float64Array(C);
  const order = Array.from(samples.keys());
  const rng = new Rng(seed * 7919 + split);
  let step = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) { // seeded Fisher–Yates
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let s0 = 0; s0 < order.length; s0 += batch) {
      const s1 = Math.min(order.length, s0 + batch);
      grad.fill(0);
      for (let k = s0; k < s1; k++) {
        const { f, cand } = samples[order[k]];
        // Forward: y = W f + b; z = gain ⊙ y / r(y); logits over the candidates.
        let ss = 0;
        for (let j = 0; j < dim; j++) {
          let q = b[j];
          for (let i = 0; i < dim; i++) q += w[j * dim + i] * f[i];
          y[j] = q;
          ss += q * q;
        }
        const r = Math.sqrt(ss / dim + EPS);
        let max = -Infinity;
        for (let t = 0; t < C; t++) {
          const row = cand[t] * dim;
          let q = 0;
          for (let j = 0; j < dim; j++) q += cls[row + j] * gain[j] * y[j];
          logits[t] = q / r;
          if (logits[t] > max) max = logits[t];
        }
        let sum = 0;
        for (let t = 0; t < C; t++) sum += logits[t] = Math.exp(logits[t] - max);
        // Backward: dlogit = p − onehot(target = candidate 0); dz = Σ dlogit · cls.
        dz.fill(0);
        for (let t = 0; t < C; t++) {
          const g = logits[t] / sum - (t === 0 ? 1 : 0);
          if (Math.abs(g) < 1e-9) continue;
          const row = cand[t] * dim;
          for (let j = 0; j < dim; j++) dz[j] += g * cls[row + j];
        }
        // Through z = gain ⊙ y / r: dy = (gain ⊙ dz) / r − y (Σ gain dz y) / (dim r³).
        let dot = 0;
        for (let j = 0; j < dim; j++) dot += gain[j] * dz[j] * y[j];
        const r3 = r * r * r * dim;
        for (let j = 0; j < dim; j++) dy[j] = gain[j] * dz[j] / r - y[j] * dot / r3;
        for (let j = 0; j < dim; j++) {
          const g = dy[j], row = j * dim;
          for (let i = 0; i < dim; i++) grad[row + i] += g * f[i];
          grad[dim * dim + j] += g;
        }
      }
      // Adam on the batch mean.
      step++;
      const n = s1 - s0, b1 = 0.9, b2 = 0.999;
      const c1 = 1 - b1 ** step, c2 = 1 - b2 ** step;
      for (let p = 0; p < P; p++) {
        const g = grad[p] / n;
        m[p] = b1 * m[p] + (1 - b1) * g;
        v[p] = b2 * v[p] + (1 - b2) * g * g;
        const u = lr * (m[p] / c1) / (Math.sqrt(v[p] / c2) + 1e-8);
        if (p < dim * dim) w[p] -= u;
        else b[p - dim * dim] -= u;
      }
    }
  }
  const states = samples.map((s) => s.f);
  const targets = samples.map((s) => s.cand[0]);
  return {
    adapter,
    plainAgreement: agreementOf(engine, undefined, states, targets, dim),
    agreement: agreementOf(engine, adapter, states, targets, dim),
  };
}

/**
 * Top-1 agreement of the early-exit head after layer `split` (through `adapter` when given)
 * with the whole model, teacher-forced along each of `sequences`: the fraction of positions
 * whose drafted next token is the whole model's greedy one. `model` must be whole.
 *
 * @example
 * ```ts
 * import { exitAgreement } from "./exit_adapter.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * console.log(exitAgreement(model, 4, undefined, [[1, 42, 7, 9]]));
 * ```
 */
export function exitAgreement(
  model: Model,
  split: number,
  adapter: ExitAdapter | undefined,
  sequences: readonly (readonly number[])[],
): number {
  const engine = new RefEngine(model);
  const samples = collect(engine, sequences, split, 1);
  return agreementOf(
    engine,
    adapter,
    samples.map((s) => s.f),
    samples.map((s) => s.cand[0]),
    model.config.dim,
  );
}

/** Writes adapters (one per split) as safetensors: `exit.K.weight` [dim, dim], `exit.K.bias`. */
export function serializeExitAdapters(adapters: readonly ExitAdapter[]): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const a of adapters) {
    tensors.set(`exit.${a.split}.weight`, { shape: [a.dim, a.dim], data: a.weight });
    tensors.set(`exit.${a.split}.bias`, { shape: [a.dim], data: a.bias });
  }
  return serializeSafetensors(tensors, { metadata: { format: "tandem-exit-adapters" } });
}

/**
 * Reads adapters written by {@linkcode serializeExitAdapters}, checked against the model's
 * hidden size. Throws `bad_model` naming what is wrong (missing bias, wrong shape).
 */
export function parseExitAdapters(
  bytes: Uint8Array,
  dim: number,
  source = "exit adapters",
): ExitAdapter[] {
  const file = parseSafetensors(bytes, source);
  const out: ExitAdapter[] = [];
  for (const name of file.entries.keys()) {
    const m = /^exit\.(\d+)\.weight$/.exec(name);
    if (!m) continue;
    const split = Number(m[1]);
    const weight = file.f32(name);
    const bias = file.f32(`exit.${split}.bias`);
    if (weight.shape.join() !== `${dim},${dim}` || bias.shape.join() !== `${dim}`) {
      throw new TandemError(
        "bad_model",
        `Cannot load ${source}: adapter ${split} has shapes [${weight.shape}] and [${bias.shape}], the model needs [${dim},${dim}] and [${dim}]`,
      );
    }
    out.push({ split, dim, weight: weight.data, bias: bias.data });
  }
  if (out.length === 0) {
    throw new TandemError("bad_model", `Cannot load ${source}: it holds no exit.K.weight tensor`);
  }
  return out.sort((a, b) => a.split - b.split);
}

/** rmsnorm without gain of x[off .. off + dim) into out. */
function normalize(x: ArrayLike<number>, off: number, dim: number, out: Float32Array): void {
  let ss = 0;
  for (let i = 0; i < dim; i++) ss += x[off + i] * x[off + i];
  const s = 1 / Math.sqrt(ss / dim + EPS);
  for (let i = 0; i < dim; i++) out[i] = x[off + i] * s;
}

/** Training positions of `sequences`: state after layer K and the whole model's top C tokens. */
function collect(
  engine: RefEngine,
  sequences: readonly (readonly number[])[],
  split: number,
  C: number,
): Sample[] {
  const { dim, vocabSize: V, nLayers: L } = engine.config;
  const out: Sample[] = [];
  for (const seq of sequences) {
    if (seq.length === 0) continue;
    const cache = engine.createCache();
    const hK = engine.forward(cache, engine.embed(seq), 0, 0, split);
    const logits = engine.head(engine.forward(cache, hK, 0, split, L)); // [n, vocab]
    for (let p = 0; p < seq.length; p++) {
      const f = new Float32Array(dim);
      normalize(hK, p * dim, dim, f);
      out.push({ f, cand: topTokens(logits, p * V, V, C) });
    }
  }
  return out;
}

/** The indices of the C largest of x[off .. off + V), largest first (first on ties). */
function topTokens(x: Float32Array, off: number, V: number, C: number): Int32Array {
  const top = new Int32Array(C).fill(-1); // kept sorted, largest first
  for (let t = 0; t < V; t++) {
    const val = x[off + t];
    if (top[C - 1] >= 0 && val <= x[off + top[C - 1]]) continue;
    let k = C - 1;
    while (k > 0 && (top[k - 1] < 0 || val > x[off + top[k - 1]])) {
      top[k] = top[k - 1];
      k--;
    }
    top[k] = t;
  }
  return top;
}

/** Agreement of head(adapter(f)) (f already normalized; the adapter re-normalizes, a no-op). */
function agreementOf(
  engine: RefEngine,
  adapter: ExitAdapter | undefined,
  states: Float32Array[],
  targets: number[],
  dim: number,
): number {
  if (states.length === 0) return 0;
  const rows = new Float32Array(states.length * dim);
  states.forEach((f, i) => rows.set(f, i * dim));
  const logits = engine.head(adapter ? applyExitAdapter(adapter, rows) : rows);
  const V = engine.config.vocabSize;
  let hit = 0;
  for (let i = 0; i < states.length; i++) if (argmax(logits, i * V, V) === targets[i]) hit++;
  return hit / states.length;
}
