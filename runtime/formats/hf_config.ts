/**
 * Hugging Face `config.json` ⇄ {@linkcode ModelConfig} for the Llama family.
 *
 * | config.json                          | ModelConfig        | note                              |
 * | ------------------------------------ | ------------------ | --------------------------------- |
 * | `model_type`                         | —                  | llama, mistral, qwen2, smollm, smollm2 |
 * | `hidden_size`                        | `dim`              |                                   |
 * | `intermediate_size`                  | `hiddenDim`        |                                   |
 * | `num_hidden_layers`                  | `nLayers`          |                                   |
 * | `num_attention_heads`                | `nHeads`           |                                   |
 * | `num_key_value_heads`                | `nKvHeads`         | default: `nHeads`                 |
 * | `head_dim`                           | `headDim`          | default: `dim / nHeads`           |
 * | `vocab_size`                         | `vocabSize`        |                                   |
 * | `max_position_embeddings`            | `maxSeqLen`        | capped by Mistral's `sliding_window` |
 * | `rms_norm_eps`                       | `normEps`          | default 1e-6                      |
 * | `rope_theta`                         | `ropeTheta`        | default 10000                     |
 * | `rope_scaling` (`rope_type` llama3)  | `ropeScaling`      | other schemes are refused         |
 * | `tie_word_embeddings`                | `tiedEmbeddings`   | default false                     |
 * | `bos_token_id`, `eos_token_id`       | `bosId`, `eosIds`  | eos may be a number or a list     |
 * | model_type `qwen2`                   | `qkvBias: true`    |                                   |
 *
 * @example
 * ```ts
 * import { parseHfConfig } from "./hf_config.ts";
 * const cfg = parseHfConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 172,
 *   num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512,
 *   max_position_embeddings: 512, bos_token_id: 1, eos_token_id: 2 });
 * console.log(cfg.headDim); // 8
 * ```
 *
 * @module
 */

import { TandemError } from "../errors.ts";
import { type ModelConfig, validateConfig } from "../model.ts";

const SUPPORTED = ["llama", "mistral", "qwen2", "smollm", "smollm2"];

type Json = Record<string, unknown>;

/**
 * Maps a parsed `config.json` to a ModelConfig. Throws `bad_model` for missing fields,
 * unsupported model types and features (o_proj/MLP biases, non-SiLU activations, RoPE
 * schemes other than llama3).
 *
 * @example
 * ```ts
 * import { parseHfConfig } from "./hf_config.ts";
 * declare const text: string;
 * const config = parseHfConfig(JSON.parse(text), "config.json");
 * ```
 */
export function parseHfConfig(json: unknown, source = "config.json"): ModelConfig {
  const fail = (why: string): never => {
    throw new TandemError("bad_model", `Cannot load ${source}: ${why}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("not a JSON object");
  const j = json as Json;
  const type = j.model_type;
  if (typeof type !== "string") fail('"model_type" is missing');
  if (!SUPPORTED.includes(type as string)) {
    fail(`model_type "${type}" is not supported (supported: ${SUPPORTED.join(", ")})`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = j[key] ?? fallback;
    if (v === undefined) fail(`"${key}" is missing`);
    if (!Number.isInteger(v) || (v as number) <= 0) {
      fail(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const num = (key: string, fallback: number): number => {
    const v = j[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      fail(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const act = j.hidden_act ?? j.hidden_activation ?? "silu";
  if (act !== "silu") fail(`hidden_act "${act}" is not supported (only silu)`);
  if (j.attention_bias === true && type !== "qwen2") {
    fail("attention_bias (o_proj bias) is not supported");
  }
  if (j.mlp_bias === true) fail("mlp_bias is not supported");

  const dim = int("hidden_size");
  const nHeads = int("num_attention_heads");
  const ropeParams = (j.rope_parameters ?? {}) as Json;
  let maxSeqLen = int("max_position_embeddings");
  const window = j.sliding_window;
  if (
    typeof window === "number" && window > 0 && window < maxSeqLen && j.use_sliding_window !== false
  ) {
    maxSeqLen = window; // within the window, sliding-window attention is full attention
  }
  const eosRaw = j.eos_token_id;
  const eosIds = eosRaw === undefined || eosRaw === null
    ? []
    : Array.isArray(eosRaw)
    ? eosRaw
    : [eosRaw];
  if (!eosIds.every((e) => Number.isInteger(e) && e >= 0)) {
    fail(`"eos_token_id" is invalid: ${JSON.stringify(eosRaw)}`);
  }
  const bosRaw = j.bos_token_id ?? eosIds[0] ?? 1;
  if (!Number.isInteger(bosRaw) || (bosRaw as number) < 0) {
    fail(`"bos_token_id" is invalid: ${JSON.stringify(bosRaw)}`);
  }
  const config: ModelConfig = {
    dim,
    hiddenDim: int("intermediate_size"),
    nLayers: int("num_hidden_layers"),
    nHeads,
    nKvHeads: int("num_key_value_heads", nHeads),
    headDim: int("head_dim", dim % nHeads === 0 ? dim / nHeads : undefined),
    vocabSize: int("vocab_size"),
    maxSeqLen,
    normEps: num("rms_norm_eps", 1e-6),
    ropeTheta: typeof ropeParams.rope_theta === "number" && j.rope_theta === undefined
      ? ropeParams.rope_theta
      : num("rope_theta", 10000),
    tiedEmbeddings: j.tie_word_embeddings === true,
    qkvBias: type === "qwen2",
    bosId: bosRaw as number,
    eosIds: eosIds as number[],
  };
  const scaling = (j.rope_scaling ?? (ropeParams.rope_type ? ropeParams : null)) as Json | null;
  if (scaling) {
    const kind = scaling.rope_type ?? scaling.type;
    if (kind === "llama3") {
      const f = (k: string): number => {
        const v = scaling[k];
        if (typeof v !== "number" || !(v > 0)) {
          fail(`rope_scaling.${k} must be a positive number, got ${JSON.stringify(v)}`);
        }
        return v as number;
      };
      config.ropeScaling = {
        type: "llama3",
        factor: f("factor"),
        lowFreqFactor: f("low_freq_factor"),
        highFreqFactor: f("high_freq_factor"),
        originalMaxPos: f("original_max_position_embeddings"),
      };
      if (config.ropeScaling.highFreqFactor <= config.ropeScaling.lowFreqFactor) {
        fail("rope_scaling.high_freq_factor must exceed low_freq_factor");
      }
    } else if (kind !== "default") {
      fail(`rope_scaling type ${JSON.stringify(kind)} is not supported (only llama3)`);
    }
  }
  validateConfig(config, source);
  return config;
}

/**
 * Writes a ModelConfig as a Llama (or Qwen2, when it has q/k/v biases) `config.json` object.
 *
 * @example
 * ```ts
 * import { hfConfigJson } from "./hf_config.ts";
 * import type { ModelConfig } from "../model.ts";
 * declare const config: ModelConfig;
 * const text = JSON.stringify(hfConfigJson(config), null, 2);
 * ```
 */
export function hfConfigJson(config: ModelConfig): Record<string, unknown> {
  const c = config;
  const qwen = c.qkvBias;
  return {
    architectures: [qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    model_type: qwen ? "qwen2" : "llama",
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling
      ? {
        rope_type: "llama3",
        factor: c.ropeScaling.factor,
        low_freq_factor: c.ropeScaling.lowFreqFactor,
        high_freq_factor: c.ropeScaling.highFreqFactor,
        original_max_position_embeddings: c.ropeScaling.originalMaxPos,
      }
      : null,
    hidden_act: "silu",
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosId,
    eos_token_id: c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds,
    torch_dtype: "float32",
  };
}
