// Hugging Face layout: config.json mapping, safetensors weights with the RoPE permutation,
// checked against an independent half-rotation forward pass and against the llama2.c layout.
import assert from "node:assert/strict";
import { roundTo } from "../runtime/dtype.ts";
import { parseLlama2c, serializeLlama2c } from "../runtime/formats/llama2c.ts";
import { modelFromHf, modelToHf, permuteRope } from "../runtime/formats/hf.ts";
import { hfConfigJson, parseHfConfig } from "../runtime/formats/hf_config.ts";
import { parseSafetensors } from "../runtime/formats/safetensors.ts";
import { RefEngine } from "../runtime/forward.ts";
import { loadHfFolder } from "../runtime/load.ts";
import type { Model, ModelConfig, Tensor } from "../runtime/model.ts";
import { assertTandemError, MemSource, randomModel, tinyConfig } from "./_fixtures.ts";
import { hfReferenceLogits } from "./_hf_reference.ts";

const HF_TOKENIZER = await Deno.readFile(
  new URL("../../shared/models/stories260K-hf/tokenizer.json", import.meta.url),
);
const FULL = (c: ModelConfig) => ({
  layers: [0, c.nLayers] as [number, number],
  embed: true,
  head: true,
});
const TOKENS = [1, 5, 17, 3, 39, 22, 8];

/** Loads the weights of an HF file map back into a Model (all parts). */
function fromFiles(files: Map<string, Uint8Array>): Model {
  const config = parseHfConfig(JSON.parse(new TextDecoder().decode(files.get("config.json"))));
  const st = parseSafetensors(files.get("model.safetensors")!, "model.safetensors");
  return modelFromHf(config, FULL(config), (n) => st.entries.has(n) ? st.f32(n) : undefined);
}

/** Logits of a prefill of `tokens` through the whole model: [n, vocab]. */
function logits(model: Model, tokens: number[]): Float32Array {
  const e = new RefEngine(model);
  const h = e.forward(e.createCache(), e.embed(tokens), 0, 0, model.config.nLayers);
  return e.head(h);
}

function rounded(model: Model, dtype: "f16" | "bf16"): Model {
  const tensors = new Map<string, Tensor>();
  for (const [n, t] of model.tensors) {
    tensors.set(n, { shape: t.shape, data: roundTo(t.data, dtype) });
  }
  return { ...model, tensors };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("config.json maps to ModelConfig for llama, qwen2, mistral and llama3 scaling", () => {
  const base = {
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 5,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    vocab_size: 512,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  const c = parseHfConfig(base);
  assert.deepEqual([c.headDim, c.nKvHeads, c.ropeTheta, c.tiedEmbeddings, c.qkvBias, c.bosId], [
    8,
    4,
    10000,
    false,
    false,
    1,
  ]);
  assert.deepEqual(c.eosIds, [2]);
  const q = parseHfConfig({
    ...base,
    model_type: "qwen2",
    eos_token_id: [2, 7],
    tie_word_embeddings: true,
  });
  assert.deepEqual([q.qkvBias, q.tiedEmbeddings, q.eosIds], [true, true, [2, 7]]);
  const m = parseHfConfig({
    ...base,
    model_type: "mistral",
    max_position_embeddings: 32768,
    sliding_window: 4096,
  });
  assert.equal(m.maxSeqLen, 4096);
  const l3 = parseHfConfig({
    ...base,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  });
  assert.deepEqual(l3.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPos: 8192,
  });
  assert.equal(l3.ropeTheta, 500000);
  assert.deepEqual(parseHfConfig(hfConfigJson(l3)), l3, "hfConfigJson is the inverse");
});

Deno.test("config.json problems are bad_model errors naming the field", async () => {
  const base = {
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 5,
    num_attention_heads: 8,
    vocab_size: 512,
    max_position_embeddings: 512,
  };
  await assertTandemError(
    () => parseHfConfig({ ...base, model_type: "gemma" }, "c.json"),
    "bad_model",
    /c\.json: model_type "gemma" is not supported \(supported: llama/,
  );
  await assertTandemError(
    () => parseHfConfig({ ...base, hidden_size: undefined }),
    "bad_model",
    /"hidden_size" is missing/,
  );
  await assertTandemError(
    () => parseHfConfig({ ...base, num_hidden_layers: 2.5 }),
    "bad_model",
    /"num_hidden_layers" must be a positive integer, got 2.5/,
  );
  await assertTandemError(
    () => parseHfConfig({ ...base, rope_scaling: { type: "yarn", factor: 4 } }),
    "bad_model",
    /rope_scaling type "yarn" is not supported/,
  );
  await assertTandemError(
    () => parseHfConfig({ ...base, hidden_act: "gelu" }),
    "bad_model",
    /hidden_act "gelu"/,
  );
  await assertTandemError(
    () => parseHfConfig({ ...base, num_key_value_heads: 3 }),
    "bad_model",
    /not a multiple of nKvHeads/,
  );
  await assertTandemError(() => parseHfConfig([1]), "bad_model", /not a JSON object/);
});

Deno.test("permuteRope moves half-rotation rows to pair rows and back", () => {
  const rows = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17]);
  const pairs = permuteRope(rows, 2, 4, 2, "toPairs"); // 2 heads of 4 rows, 2 columns
  assert.deepEqual([...pairs], [0, 1, 4, 5, 2, 3, 6, 7, 10, 11, 14, 15, 12, 13, 16, 17]);
  assert.deepEqual([...permuteRope(pairs, 2, 4, 2, "toHalves")], [...rows]);
});

const CASES: [string, ModelConfig][] = [
  ["multi-head, tied", tinyConfig({ nKvHeads: 4 })],
  ["grouped-query, untied", tinyConfig({ tiedEmbeddings: false, headDim: 4 })],
  [
    "qwen2 biases, untied, theta 1e6",
    tinyConfig({ qkvBias: true, tiedEmbeddings: false, ropeTheta: 1e6, nKvHeads: 1 }),
  ],
  [
    "llama3 rope scaling, headDim 8",
    tinyConfig({
      nHeads: 2,
      nKvHeads: 1,
      headDim: 8,
      maxSeqLen: 128,
      ropeScaling: {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPos: 64,
      },
    }),
  ],
  ["headDim != dim / nHeads", tinyConfig({ nHeads: 2, nKvHeads: 2, headDim: 6 })],
];

for (const [name, config] of CASES) {
  Deno.test(`HF f32 (${name}): loads exactly and matches an independent half-rotation forward pass`, () => {
    const model = randomModel(config, 11);
    const files = modelToHf(model);
    const loaded = fromFiles(files);
    for (const [n, t] of model.tensors) assert.deepEqual(loaded.tensors.get(n)!.data, t.data, n);
    const st = parseSafetensors(files.get("model.safetensors")!);
    // Far positions exercise the low frequencies that llama3 scaling changes.
    const positions = config.ropeScaling ? 100 : TOKENS.length;
    const tokens = Array.from({ length: positions }, (_, i) => TOKENS[i % TOKENS.length]);
    const ours = logits(loaded, tokens);
    const ref = hfReferenceLogits(config, (n) => st.f32(n).data, tokens);
    assert.ok(maxDiff(ours, ref) < 2e-4, `max |diff| ${maxDiff(ours, ref)}`);
  });
}

Deno.test("HF layout and llama2.c layout of the same weights give identical logits (f32, f16, bf16)", () => {
  for (const config of [tinyConfig(), tinyConfig({ tiedEmbeddings: false })]) {
    const model = randomModel(config, 5);
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const want = dtype === "F32" ? model : rounded(model, dtype === "F16" ? "f16" : "bf16");
      const viaLlama2c = parseLlama2c(serializeLlama2c(want), "x.bin");
      const viaHf = fromFiles(modelToHf(model, { dtype }));
      assert.deepEqual(
        logits(viaHf, TOKENS),
        logits(viaLlama2c, TOKENS),
        `${dtype} tied=${config.tiedEmbeddings}`,
      );
    }
  }
});

Deno.test("sharded checkpoints load, and a shard of the model reads only the files it needs", async () => {
  const config = tinyConfig({ nLayers: 4, tiedEmbeddings: false });
  const model = randomModel(config, 9);
  const files = modelToHf(model, { tensorsPerShard: 9 });
  assert.ok(files.has("model.safetensors.index.json") && !files.has("model.safetensors"));
  files.set("tokenizer.json", HF_TOKENIZER);
  const full = await loadHfFolder(new MemSource(files));
  assert.deepEqual(logits(full.model, TOKENS), logits(model, TOKENS));
  const src = new MemSource(files);
  const edge = await loadHfFolder(src, { parts: { layers: [3, 4], embed: false, head: true } });
  assert.deepEqual(edge.model.parts, { layers: [3, 4], embed: false, head: true });
  assert.deepEqual([...edge.model.tensors.keys()].sort(), [
    "layers.3.attn_norm",
    "layers.3.ffn_norm",
    "layers.3.w1",
    "layers.3.w2",
    "layers.3.w3",
    "layers.3.wk",
    "layers.3.wo",
    "layers.3.wq",
    "layers.3.wv",
    "norm",
    "output",
  ]);
  const shardsRead = [...src.reads.keys()].filter((f) => f.endsWith(".safetensors"));
  const shardCount = [...files.keys()].filter((f) => f.endsWith(".safetensors")).length;
  assert.ok(shardsRead.length < shardCount, `read ${shardsRead.length} of ${shardCount} shards`);
  for (const [n, t] of edge.model.tensors) assert.deepEqual(t.data, model.tensors.get(n)!.data, n);
});

Deno.test("missing tensors, wrong shapes and bad config.json are typed errors", async () => {
  const config = tinyConfig({ tiedEmbeddings: false });
  const files = modelToHf(randomModel(config, 2));
  files.set("tokenizer.json", HF_TOKENIZER);
  const st = parseSafetensors(files.get("model.safetensors")!);
  const { serializeSafetensors } = await import("../runtime/formats/safetensors_write.ts");
  const without = (drop: string) =>
    serializeSafetensors(
      new Map([...st.entries.keys()].filter((n) => n !== drop).map((n) => [n, st.f32(n)])),
    );
  const variant = (name: string, bytes: Uint8Array) =>
    new MemSource(new Map([...files, [name, bytes]]));
  await assertTandemError(
    () => loadHfFolder(variant("model.safetensors", without("model.layers.1.mlp.up_proj.weight"))),
    "bad_model",
    /tensor model\.layers\.1\.mlp\.up_proj\.weight is missing/,
  );
  await assertTandemError(
    () => loadHfFolder(variant("model.safetensors", without("lm_head.weight"))),
    "bad_model",
    /lm_head\.weight is missing \(config\.json says tie_word_embeddings is false\)/,
  );
  const cfg = JSON.parse(new TextDecoder().decode(files.get("config.json")));
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  await assertTandemError(
    () => loadHfFolder(variant("config.json", enc({ ...cfg, intermediate_size: 20 }))),
    "bad_model",
    /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[24,16\], config\.json implies \[20,16\]/,
  );
  await assertTandemError(
    () => loadHfFolder(variant("config.json", new TextEncoder().encode("{oops"))),
    "bad_model",
    /mem:config\.json: not valid JSON/,
  );
  await assertTandemError(
    () => loadHfFolder(variant("config.json", enc({ ...cfg, model_type: "phi3" }))),
    "bad_model",
    /model_type "phi3" is not supported/,
  );
  await assertTandemError(
    () =>
      loadHfFolder(variant("model.safetensors", files.get("model.safetensors")!.subarray(0, 300))),
    "bad_model",
    /mem:model\.safetensors: file is truncated/,
  );
  const noWeights = new MemSource(new Map([...files].filter(([n]) => n !== "model.safetensors")));
  await assertTandemError(
    () => loadHfFolder(noWeights),
    "bad_model",
    /no weights found \(looked for model\.safetensors, model\.safetensors\.index\.json/,
  );
  const noTok = new MemSource(new Map([...files].filter(([n]) => n !== "tokenizer.json")));
  await assertTandemError(
    () => loadHfFolder(noTok),
    "bad_tokenizer",
    /tokenizer mem:tokenizer\.json: no such file/,
  );
  await assertTandemError(
    () => loadHfFolder(new MemSource(files), { parts: { layers: [1, 5] } }),
    "bad_argument",
    /layers \[1,5\]: the model has layers 0\.\.2/,
  );
});
