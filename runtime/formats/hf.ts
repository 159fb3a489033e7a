/**
 * Hugging Face Llama-family weights ⇄ tandem's {@linkcode Model}.
 *
 * | Hugging Face name                              | tandem name           |
 * | ---------------------------------------------- | --------------------- |
 * | `model.embed_tokens.weight`                    | `embed`               |
 * | `model.layers.{i}.input_layernorm.weight`      | `layers.{i}.attn_norm` |
 * | `model.layers.{i}.self_attn.q_proj.weight/bias` | `layers.{i}.wq` / `bq` (rows permuted) |
 * | `model.layers.{i}.self_attn.k_proj.weight/bias` | `layers.{i}.wk` / `bk` (rows permuted) |
 * | `model.layers.{i}.self_attn.v_proj.weight/bias` | `layers.{i}.wv` / `bv` |
 * | `model.layers.{i}.self_attn.o_proj.weight`     | `layers.{i}.wo`       |
 * | `model.layers.{i}.post_attention_layernorm.weight` | `layers.{i}.ffn_norm` |
 * | `model.layers.{i}.mlp.gate_proj/down_proj/up_proj.weight` | `layers.{i}.w1` / `w2` / `w3` |
 * | `model.norm.weight`                            | `norm`                |
 * | `lm_head.weight`                               | `output` (untied only) |
 *
 * RoPE: Hugging Face rotates the pair (x[j], x[j + d/2]) of each head; tandem rotates
 * (x[2j], x[2j + 1]). Loading therefore moves row `j` of each head of q/k to row `2j` and row
 * `j + d/2` to row `2j + 1` (the inverse of the permutation llama.cpp's converter applies).
 * Scores q·k are unchanged because q and k are permuted alike; v and o are untouched.
 *
 * @example
 * ```ts
 * import { hfTensorNames } from "./hf.ts";
 * import type { ModelConfig } from "../model.ts";
 * declare const config: ModelConfig;
 * const names = hfTensorNames(config, { layers: [0, 2], embed: true, head: false });
 * console.log(names.get("layers.0.wq")); // "model.layers.0.self_attn.q_proj.weight"
 * ```
 *
 * @module
 */

import { TandemError } from "../errors.ts";
import {
  expectedShapes,
  type Model,
  type ModelConfig,
  type ModelParts,
  type Tensor,
  validateModel,
} from "../model.ts";
import { hfConfigJson } from "./hf_config.ts";
import { type SafetensorsDtype, serializeSafetensors } from "./safetensors_write.ts";

const LAYER_NAMES: Record<string, string> = {
  attn_norm: "input_layernorm.weight",
  wq: "self_attn.q_proj.weight",
  wk: "self_attn.k_proj.weight",
  wv: "self_attn.v_proj.weight",
  wo: "self_attn.o_proj.weight",
  bq: "self_attn.q_proj.bias",
  bk: "self_attn.k_proj.bias",
  bv: "self_attn.v_proj.bias",
  ffn_norm: "post_attention_layernorm.weight",
  w1: "mlp.gate_proj.weight",
  w2: "mlp.down_proj.weight",
  w3: "mlp.up_proj.weight",
};

/**
 * The Hugging Face name of every tensor a model with these parts needs (tandem name → HF name).
 *
 * @example
 * ```ts
 * import { hfTensorNames } from "./hf.ts";
 * import type { ModelConfig } from "../model.ts";
 * declare const config: ModelConfig;
 * const needed = new Set(hfTensorNames(config, { layers: [0, config.nLayers], embed: true, head: true }).values());
 * ```
 */
export function hfTensorNames(config: ModelConfig, parts: ModelParts): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of expectedShapes(config, parts).keys()) {
    if (name === "embed") out.set(name, "model.embed_tokens.weight");
    else if (name === "norm") out.set(name, "model.norm.weight");
    else if (name === "output") out.set(name, "lm_head.weight");
    else {
      const [, i, suffix] = name.split(".");
      out.set(name, `model.layers.${i}.${LAYER_NAMES[suffix]}`);
    }
  }
  return out;
}

/**
 * Reorders the rows of a q/k weight `[heads*headDim, cols]` (or a bias, cols = 1) between
 * the half-rotation (HF) and pair-rotation (tandem) RoPE conventions. Returns a new array.
 *
 * @example
 * ```ts
 * import { permuteRope } from "./hf.ts";
 * // one head of size 4, one column: HF rows [a, b, c, d] → tandem [a, c, b, d]
 * console.log(permuteRope(new Float32Array([0, 1, 2, 3]), 1, 4, 1, "toPairs")); // [0, 2, 1, 3]
 * ```
 */
export function permuteRope(
  data: Float32Array,
  heads: number,
  headDim: number,
  cols: number,
  direction: "toPairs" | "toHalves",
): Float32Array {
  const out = new Float32Array(data.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (const [pair, halfRow] of [[2 * j, j], [2 * j + 1, j + half]]) {
        const pairAt = (h * headDim + pair) * cols;
        const halfAt = (h * headDim + halfRow) * cols;
        if (direction === "toPairs") out.set(data.subarray(halfAt, halfAt + cols), pairAt);
        else out.set(data.subarray(pairAt, pairAt + cols), halfAt);
      }
    }
  }
  return out;
}

/** Permutes q/k weights and biases of one tensor by its tandem name; other tensors pass through. */
function convertRope(
  name: string,
  t: Tensor,
  config: ModelConfig,
  direction: "toPairs" | "toHalves",
): Tensor {
  const suffix = name.slice(name.lastIndexOf(".") + 1);
  const heads = suffix === "wq" || suffix === "bq"
    ? config.nHeads
    : suffix === "wk" || suffix === "bk"
    ? config.nKvHeads
    : 0;
  if (!heads) return t;
  const cols = t.shape.length === 2 ? t.shape[1] : 1;
  return { shape: t.shape, data: permuteRope(t.data, heads, config.headDim, cols, direction) };
}

/**
 * Builds a validated Model from Hugging Face tensors. `get` returns an HF tensor as f32 (or
 * undefined when absent); only the tensors `parts` needs are requested. Throws `bad_model`.
 *
 * @example
 * ```ts
 * import { modelFromHf } from "./hf.ts";
 * import { parseSafetensors } from "./safetensors.ts";
 * import type { ModelConfig } from "../model.ts";
 * declare const config: ModelConfig; declare const bytes: Uint8Array;
 * const file = parseSafetensors(bytes, "model.safetensors");
 * const model = modelFromHf(config, { layers: [0, config.nLayers], embed: true, head: true },
 *   (name) => file.entries.has(name) ? file.f32(name) : undefined);
 * ```
 */
export function modelFromHf(
  config: ModelConfig,
  parts: ModelParts,
  get: (hfName: string) => Tensor | undefined,
  source = "model",
): Model {
  const shapes = expectedShapes(config, parts);
  const tensors = new Map<string, Tensor>();
  for (const [name, hfName] of hfTensorNames(config, parts)) {
    const t = get(hfName);
    if (!t) {
      const hint = name === "output" ? " (config.json says tie_word_embeddings is false)" : "";
      throw new TandemError(
        "bad_model",
        `Cannot load ${source}: tensor ${hfName} is missing${hint}`,
      );
    }
    const want = shapes.get(name)!;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new TandemError(
        "bad_model",
        `Cannot load ${source}: tensor ${hfName} has shape [${t.shape}], config.json implies [${want}]`,
      );
    }
    tensors.set(name, convertRope(name, t, config, "toPairs"));
  }
  const model: Model = {
    config,
    parts: { layers: [...parts.layers], embed: parts.embed, head: parts.head },
    tensors,
  };
  validateModel(model, source);
  return model;
}

/** Options of {@linkcode modelToHf}. */
export interface HfWriteOptions {
  /** Stored dtype (default F32). */
  dtype?: SafetensorsDtype;
  /** Split weights into shards of at most this many tensors, with an index file. */
  tensorsPerShard?: number;
}

/**
 * Writes a full model as a Hugging Face folder: file name → bytes (`config.json`, and either
 * `model.safetensors` or shards plus `model.safetensors.index.json`).
 *
 * @example
 * ```ts
 * import { modelToHf } from "./hf.ts";
 * import type { Model } from "../model.ts";
 * declare const model: Model;
 * for (const [file, bytes] of modelToHf(model, { dtype: "BF16" })) console.log(file, bytes.byteLength);
 * ```
 */
export function modelToHf(model: Model, options: HfWriteOptions = {}): Map<string, Uint8Array> {
  const c = model.config;
  const full: ModelParts = { layers: [0, c.nLayers], embed: true, head: true };
  validateModel({ ...model, parts: full }, "model to write");
  const hf = new Map<string, Tensor>();
  for (const [name, hfName] of hfTensorNames(c, full)) {
    hf.set(hfName, convertRope(name, model.tensors.get(name)!, c, "toHalves"));
  }
  const files = new Map<string, Uint8Array>();
  files.set("config.json", new TextEncoder().encode(JSON.stringify(hfConfigJson(c), null, 2)));
  const dtype = options.dtype ?? "F32";
  const metadata = { format: "pt" };
  const per = options.tensorsPerShard;
  if (!per || per >= hf.size) {
    files.set("model.safetensors", serializeSafetensors(hf, { dtype, metadata }));
    return files;
  }
  const entries = [...hf];
  const count = Math.ceil(entries.length / per);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < count; s++) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${
      String(count).padStart(5, "0")
    }.safetensors`;
    const shard = new Map(entries.slice(s * per, (s + 1) * per));
    for (const name of shard.keys()) weightMap[name] = file;
    files.set(file, serializeSafetensors(shard, { dtype, metadata }));
  }
  const index = { metadata: {}, weight_map: weightMap };
  files.set(
    "model.safetensors.index.json",
    new TextEncoder().encode(JSON.stringify(index, null, 2)),
  );
  return files;
}
