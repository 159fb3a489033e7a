/**
 * The one in-memory model description that every loader produces and every engine consumes.
 *
 * A {@linkcode Model} is a {@linkcode ModelConfig} plus f32 tensors named as below. Weight
 * matrices are row-major `[out, in]` (y = W x). RoPE is always applied to consecutive pairs
 * of each head's dimensions (llama2.c's convention): loaders of Hugging Face checkpoints,
 * which rotate halves, permute the rows of `wq`/`wk` (and their biases) at load time.
 *
 * | name                    | shape              | present when            |
 * | ----------------------- | ------------------ | ----------------------- |
 * | `embed`                 | [vocab, dim]       | the model holds layer 0 or the head is tied |
 * | `layers.{i}.attn_norm`  | [dim]              | layer i is held         |
 * | `layers.{i}.wq`         | [nHeads*headDim, dim] |                      |
 * | `layers.{i}.wk`, `wv`   | [nKvHeads*headDim, dim] |                    |
 * | `layers.{i}.bq/bk/bv`   | [rows of wq/wk/wv] | `config.qkvBias`        |
 * | `layers.{i}.wo`         | [dim, nHeads*headDim] |                      |
 * | `layers.{i}.ffn_norm`   | [dim]              |                         |
 * | `layers.{i}.w1` (gate)  | [hidden, dim]      |                         |
 * | `layers.{i}.w2` (down)  | [dim, hidden]      |                         |
 * | `layers.{i}.w3` (up)    | [hidden, dim]      |                         |
 * | `norm`                  | [dim]              | the head is held        |
 * | `output`                | [vocab, dim]       | head held and not tied  |
 *
 * A model may hold only some layers (a device or edge shard): `layers` says which.
 *
 * @module
 */

import { check, TandemError } from "./errors.ts";

/** Optional RoPE frequency scaling as Llama 3.1+ configs describe it. */
export interface RopeScaling {
  /** Only the "llama3" scheme is supported. */
  type: "llama3";
  /** Overall scale factor (8 for Llama 3.1). */
  factor: number;
  /** Wavelengths longer than originalMaxPos / lowFreqFactor are scaled fully. */
  lowFreqFactor: number;
  /** Wavelengths shorter than originalMaxPos / highFreqFactor are not scaled. */
  highFreqFactor: number;
  /** The context length the model was trained with before scaling. */
  originalMaxPos: number;
}

/** Hyper-parameters of a Llama-family decoder. */
export interface ModelConfig {
  /** Model width (hidden size). */
  dim: number;
  /** Feed-forward inner width. */
  hiddenDim: number;
  /** Number of transformer layers in the full model. */
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (grouped-query attention when fewer than nHeads). */
  nKvHeads: number;
  /** Size of one head. Usually dim / nHeads. */
  headDim: number;
  /** Vocabulary size. */
  vocabSize: number;
  /** Longest context the model supports. */
  maxSeqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base frequency. */
  ropeTheta: number;
  /** RoPE frequency scaling, if any. */
  ropeScaling?: RopeScaling;
  /** Whether the classifier shares the token embedding. */
  tiedEmbeddings: boolean;
  /** Whether q/k/v projections carry a bias (Qwen2). */
  qkvBias: boolean;
  /** Beginning-of-sequence token id. */
  bosId: number;
  /** End-of-sequence token ids (generation stops on any). */
  eosIds: number[];
}

/** A dense f32 tensor. */
export interface Tensor {
  /** Shape, outermost first. */
  shape: number[];
  /** Row-major values; length is the product of shape. */
  data: Float32Array;
}

/** Which parts of the model a {@linkcode Model} holds. */
export interface ModelParts {
  /** Layers held, as a half-open range [from, to). */
  layers: [number, number];
  /** Whether the token embedding is held. */
  embed: boolean;
  /** Whether the final norm and classifier are held. */
  head: boolean;
}

/** A model (or a shard of one): config, which parts are held, and named f32 tensors. */
export interface Model {
  /** Hyper-parameters of the full model. */
  config: ModelConfig;
  /** What this object holds. */
  parts: ModelParts;
  /** Tensors by name (see the module doc for names and shapes). */
  tensors: Map<string, Tensor>;
}

/** Per-layer tensor suffixes, in canonical order. */
export const LAYER_TENSORS = [
  "attn_norm",
  "wq",
  "wk",
  "wv",
  "wo",
  "ffn_norm",
  "w1",
  "w2",
  "w3",
] as const;

/** Bias suffixes present when `config.qkvBias`. */
export const BIAS_TENSORS = ["bq", "bk", "bv"] as const;

/**
 * The expected shape of every tensor a model with these parts must hold, in canonical order.
 *
 * @example
 * ```ts
 * import { expectedShapes } from "./model.ts";
 * const cfg = { dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, headDim: 4,
 *   vocabSize: 10, maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true,
 *   qkvBias: false, bosId: 1, eosIds: [2] };
 * const shapes = expectedShapes(cfg, { layers: [0, 1], embed: true, head: true });
 * console.log(shapes.get("layers.0.wk")); // [4, 8]
 * ```
 */
export function expectedShapes(config: ModelConfig, parts: ModelParts): Map<string, number[]> {
  const { dim, hiddenDim, nHeads, nKvHeads, headDim, vocabSize } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const shapes = new Map<string, number[]>();
  if (parts.embed || (parts.head && config.tiedEmbeddings)) shapes.set("embed", [vocabSize, dim]);
  for (let i = parts.layers[0]; i < parts.layers[1]; i++) {
    const p = `layers.${i}.`;
    shapes.set(p + "attn_norm", [dim]);
    shapes.set(p + "wq", [qDim, dim]);
    shapes.set(p + "wk", [kvDim, dim]);
    shapes.set(p + "wv", [kvDim, dim]);
    shapes.set(p + "wo", [dim, qDim]);
    shapes.set(p + "ffn_norm", [dim]);
    shapes.set(p + "w1", [hiddenDim, dim]);
    shapes.set(p + "w2", [dim, hiddenDim]);
    shapes.set(p + "w3", [hiddenDim, dim]);
    if (config.qkvBias) {
      shapes.set(p + "bq", [qDim]);
      shapes.set(p + "bk", [kvDim]);
      shapes.set(p + "bv", [kvDim]);
    }
  }
  if (parts.head) {
    shapes.set("norm", [dim]);
    if (!config.tiedEmbeddings) shapes.set("output", [vocabSize, dim]);
  }
  return shapes;
}

/**
 * Checks a config for values no engine can run; throws `bad_model` naming the first problem.
 *
 * @example
 * ```ts
 * import { validateConfig } from "./model.ts";
 * try {
 *   validateConfig({ dim: 0 } as never);
 * } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function validateConfig(config: ModelConfig, source = "model"): void {
  const positive: (keyof ModelConfig)[] = [
    "dim",
    "hiddenDim",
    "nLayers",
    "nHeads",
    "nKvHeads",
    "headDim",
    "vocabSize",
    "maxSeqLen",
  ];
  for (const key of positive) {
    const v = config[key];
    check(
      Number.isInteger(v) && (v as number) > 0 && (v as number) < 2 ** 31,
      "bad_model",
      () => `Cannot load ${source}: ${key} must be a positive integer, got ${v}`,
    );
  }
  check(
    config.nHeads % config.nKvHeads === 0,
    "bad_model",
    () =>
      `Cannot load ${source}: nHeads (${config.nHeads}) is not a multiple of nKvHeads (${config.nKvHeads})`,
  );
  check(
    config.headDim % 2 === 0,
    "bad_model",
    () => `Cannot load ${source}: headDim ${config.headDim} must be even for RoPE`,
  );
  check(
    Number.isFinite(config.normEps) && config.normEps > 0,
    "bad_model",
    () => `Cannot load ${source}: normEps must be a positive number, got ${config.normEps}`,
  );
  check(
    Number.isFinite(config.ropeTheta) && config.ropeTheta > 0,
    "bad_model",
    () => `Cannot load ${source}: ropeTheta must be a positive number, got ${config.ropeTheta}`,
  );
}

/**
 * Checks that a model holds exactly the tensors its parts need, with the right shapes and
 * finite lengths. Throws `bad_model` naming the first missing or mis-shaped tensor.
 *
 * @example
 * ```ts
 * import { validateModel, type Model } from "./model.ts";
 * declare const model: Model;
 * // validateModel(model, "stories260K.bin");
 * ```
 */
export function validateModel(model: Model, source = "model"): void {
  validateConfig(model.config, source);
  const { layers } = model.parts;
  check(
    Number.isInteger(layers[0]) && Number.isInteger(layers[1]) && 0 <= layers[0] &&
      layers[0] <= layers[1] && layers[1] <= model.config.nLayers,
    "bad_model",
    () =>
      `Cannot load ${source}: layer range [${layers[0]}, ${
        layers[1]
      }) is outside 0..${model.config.nLayers}`,
  );
  for (const [name, shape] of expectedShapes(model.config, model.parts)) {
    const t = model.tensors.get(name);
    if (!t) throw new TandemError("bad_model", `Cannot load ${source}: tensor ${name} is missing`);
    const n = shape.reduce((a, b) => a * b, 1);
    check(
      t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]) &&
        t.data.length === n,
      "bad_model",
      () =>
        `Cannot load ${source}: tensor ${name} has shape [${t.shape}] (${t.data.length} values), expected [${shape}]`,
    );
  }
}

/** Number of multiply-accumulates ×2 (FLOPs) of one token through one layer at context `ctx`. */
export function layerFlops(config: ModelConfig, ctx: number): number {
  const { dim, hiddenDim, nHeads, nKvHeads, headDim } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const matmuls = dim * qDim + 2 * dim * kvDim + qDim * dim + 3 * dim * hiddenDim;
  const attention = 2 * nHeads * headDim * ctx; // scores + weighted sum
  return 2 * (matmuls + attention);
}

/** FLOPs of the classifier for one token. */
export function headFlops(config: ModelConfig): number {
  return 2 * config.dim * config.vocabSize;
}

/** Total number of parameters a full model holds (tied classifier counted once). */
export function parameterCount(config: ModelConfig): number {
  const shapes = expectedShapes(config, { layers: [0, config.nLayers], embed: true, head: true });
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}
