/**
 * llama2.c checkpoints (legacy version-0 layout), read and written.
 *
 * | offset | type         | field                                                   |
 * | ------ | ------------ | ------------------------------------------------------- |
 * | 0      | int32 × 7 LE | dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len |
 * | 28     | f32 LE       | token_embedding [vocab, dim]                            |
 * |        |              | rms_att [L, dim]; wq [L, dim, dim]; wk, wv [L, kv_dim, dim]; wo [L, dim, dim] |
 * |        |              | rms_ffn [L, dim]; w1 [L, hidden, dim]; w2 [L, dim, hidden]; w3 [L, hidden, dim] |
 * |        |              | rms_final [dim]; two legacy RoPE tables [seq_len, head_size/2] (ignored) |
 * |        |              | classifier [vocab, dim], only when vocab_size < 0 (not shared) |
 *
 * A negative `vocab_size` is llama2.c's flag for an unshared classifier; here it is parsed
 * into {@linkcode ModelConfig.tiedEmbeddings}. RoPE rotates consecutive pairs (theta 10000),
 * which is the runtime's own convention, so no permutation is needed.
 *
 * @example
 * ```ts
 * import { parseLlama2c } from "./llama2c.ts";
 * const bytes = await Deno.readFile("../shared/models/stories260K/stories260K.bin");
 * const model = parseLlama2c(bytes, "stories260K.bin");
 * console.log(model.config.nLayers); // 5
 * ```
 *
 * @module
 */

import { TandemError } from "../errors.ts";
import { type Model, type ModelConfig, type Tensor, validateConfig } from "../model.ts";

const HEADER_BYTES = 28;

/** Reads a llama2.c checkpoint. Throws `bad_model` naming what is wrong. */
export function parseLlama2c(bytes: Uint8Array, source = "checkpoint"): Model {
  if (bytes.byteLength < HEADER_BYTES) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: file is ${bytes.byteLength} bytes, a llama2.c header needs ${HEADER_BYTES}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = Array.from({ length: 7 }, (_, i) => view.getInt32(i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = h;
  if (view.getUint32(0, true) === 0x616b3432) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: this is a versioned llama2.c export (magic "ak42"); only the legacy version-0 layout is supported`,
    );
  }
  const config: ModelConfig = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim: nHeads > 0 ? dim / nHeads : 0,
    vocabSize: Math.abs(vocabRaw),
    maxSeqLen: seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: vocabRaw > 0,
    qkvBias: false,
    bosId: 1,
    eosIds: [2],
  };
  validateConfig(config, source);
  if (dim % nHeads !== 0) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: dim ${dim} is not a multiple of n_heads ${nHeads}`,
    );
  }
  const { headDim, vocabSize } = config;
  const kvDim = nKvHeads * headDim;
  const L = nLayers;
  const layout: [string, number[]][] = [
    ["embed", [vocabSize, dim]],
    ["attn_norm", [L, dim]],
    ["wq", [L, dim, dim]],
    ["wk", [L, kvDim, dim]],
    ["wv", [L, kvDim, dim]],
    ["wo", [L, dim, dim]],
    ["ffn_norm", [L, dim]],
    ["w1", [L, hiddenDim, dim]],
    ["w2", [L, dim, hiddenDim]],
    ["w3", [L, hiddenDim, dim]],
    ["norm", [dim]],
    ["rope_real", [seqLen, headDim / 2]],
    ["rope_imag", [seqLen, headDim / 2]],
  ];
  if (!config.tiedEmbeddings) layout.push(["output", [vocabSize, dim]]);
  const floats = layout.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
  const expected = HEADER_BYTES + 4 * floats;
  if (bytes.byteLength !== expected) {
    const what = bytes.byteLength < expected ? "truncated" : "longer than its header describes";
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: file is ${what} (${bytes.byteLength} bytes; header [dim ${dim}, hidden ${hiddenDim}, layers ${nLayers}, heads ${nHeads}/${nKvHeads}, vocab ${vocabRaw}, seq ${seqLen}] needs ${expected})`,
    );
  }
  // One aligned copy of the payload; every tensor is a view into it.
  const all = new Float32Array(floats);
  new Uint8Array(all.buffer).set(bytes.subarray(HEADER_BYTES));
  const tensors = new Map<string, Tensor>();
  let off = 0;
  for (const [name, shape] of layout) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = all.subarray(off, off + n);
    off += n;
    if (name.startsWith("rope_")) continue;
    if (shape.length > 1 && shape[0] === L && !["embed", "output", "norm"].includes(name)) {
      const per = n / L;
      for (let l = 0; l < L; l++) {
        tensors.set(`layers.${l}.${name}`, {
          shape: shape.slice(1),
          data: data.subarray(l * per, (l + 1) * per),
        });
      }
    } else {
      tensors.set(name, { shape, data });
    }
  }
  for (const [name, t] of tensors) {
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) {
        throw new TandemError(
          "bad_model",
          `Cannot load ${source}: tensor ${name} holds a non-finite value at index ${i}`,
        );
      }
    }
  }
  return { config, parts: { layers: [0, nLayers], embed: true, head: true }, tensors };
}

/**
 * Writes a full model in the llama2.c legacy layout (RoPE tables computed as llama2.c's
 * export did). The model must use theta 10000 and no biases.
 */
export function serializeLlama2c(model: Model): Uint8Array {
  const c = model.config;
  if (c.qkvBias || c.ropeTheta !== 10000 || c.ropeScaling || c.headDim * c.nHeads !== c.dim) {
    throw new TandemError(
      "bad_argument",
      "Cannot write a llama2.c checkpoint: it holds no biases, RoPE theta other than 10000, or headDim != dim/nHeads",
    );
  }
  const parts: Float32Array[] = [];
  const t = (name: string) => {
    const x = model.tensors.get(name);
    if (!x) {
      throw new TandemError("bad_argument", `Cannot write checkpoint: tensor ${name} missing`);
    }
    return x.data;
  };
  parts.push(t("embed"));
  for (const name of ["attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"]) {
    for (let l = 0; l < c.nLayers; l++) parts.push(t(`layers.${l}.${name}`));
  }
  parts.push(t("norm"));
  const half = c.headDim / 2;
  const re = new Float32Array(c.maxSeqLen * half);
  const im = new Float32Array(c.maxSeqLen * half);
  for (let p = 0; p < c.maxSeqLen; p++) {
    for (let j = 0; j < half; j++) {
      // Computed in f32 steps as llama2.c's PyTorch export did (equal to within 1 ulp: libm differs).
      // Readers ignore these tables.
      const f = Math.fround(1 / Math.fround(Math.pow(10000, Math.fround((2 * j) / c.headDim))));
      const a = Math.fround(p * f);
      re[p * half + j] = Math.cos(a);
      im[p * half + j] = Math.sin(a);
    }
  }
  parts.push(re, im);
  if (!c.tiedEmbeddings) parts.push(t("output"));
  const floats = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(HEADER_BYTES + 4 * floats);
  const view = new DataView(out.buffer);
  const header = [
    c.dim,
    c.hiddenDim,
    c.nLayers,
    c.nHeads,
    c.nKvHeads,
    c.tiedEmbeddings ? c.vocabSize : -c.vocabSize,
    c.maxSeqLen,
  ];
  header.forEach((v, i) => view.setInt32(i * 4, v, true));
  let off = HEADER_BYTES;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), off);
    off += p.byteLength;
  }
  return out;
}
