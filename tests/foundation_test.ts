// The foundation: llama2.c loader and tokenizer, reference forward pass over layer ranges,
// greedy generation of the fixture model, sampling.
import assert from "node:assert/strict";
import { parseLlama2c, serializeLlama2c } from "../runtime/formats/llama2c.ts";
import { Llama2cTokenizer, parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { StreamDecoder } from "../runtime/tokenizer/tokenizer.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { TandemError } from "../runtime/errors.ts";
import type { Model } from "../runtime/model.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const modelBytes = await Deno.readFile(new URL("stories260K.bin", DIR));
const tokBytes = await Deno.readFile(new URL("tok512.bin", DIR));
const model = parseLlama2c(modelBytes, "stories260K.bin");
const tok = parseLlama2cTokenizer(tokBytes, model.config.vocabSize, "tok512.bin");
const STORY =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";

function assertTandemError(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TandemError, `expected TandemError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("llama2.c loader reads the fixture's architecture", () => {
  const c = model.config;
  assert.deepEqual(
    [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.headDim, c.vocabSize, c.maxSeqLen],
    [64, 172, 5, 8, 4, 8, 512, 512],
  );
  assert.equal(c.tiedEmbeddings, true);
  assert.equal(model.tensors.get("layers.4.wk")!.shape.join(","), "32,64");
  assert.equal(model.tensors.has("output"), false);
});

Deno.test("tokenizer encodes as the reference does and decodes back", () => {
  assert.deepEqual(tok.encode("Once upon a time"), [1, 403, 407, 261, 378]);
  assert.deepEqual(tok.encode(""), [1]);
  assert.deepEqual(tok.encode("", { bos: false }), []);
  for (
    const s of ["Hello, world!", "naïve café — 日本語 🙂", "tabs\tand\nnewlines", "  two spaces"]
  ) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s, `round trip of ${JSON.stringify(s)}`);
  }
  // Characters outside the vocabulary fall back to <0xNN> byte pieces (id = byte + 3).
  const emoji = tok.encode("🙂", { bos: false });
  assert.ok(emoji.slice(1).every((id) => id >= 3 && id < 259), `byte pieces: ${emoji}`);
});

Deno.test("stream decoder never splits a UTF-8 character and equals the full decode", () => {
  const ids = tok.encode("snow ☃ and 🙂 fall", { bos: false });
  const stream = new StreamDecoder(tok, [tok.bosId]);
  const pieces = ids.map((id) => stream.push(id));
  pieces.push(stream.flush());
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")));
  assert.equal(pieces.join(""), tok.decode([tok.bosId, ...ids]));
  assert.ok(pieces.filter((p) => p === "").length >= 2, "multi-byte characters are held back");
});

Deno.test("greedy generation from BOS prints the published story, token by token", () => {
  const engine = new RefEngine(model);
  const ids = [...generate(engine, [1], { maxTokens: 60 })];
  const expected = tok.encode(STORY, { bos: false });
  assert.deepEqual(ids.slice(0, expected.length), expected);
  assert.ok(tok.decode([1, ...ids]).startsWith(STORY));
});

Deno.test("layers [0, K) then [K, L) equal [0, L) bit for bit, for every K, prefill and decode", () => {
  const engine = new RefEngine(model);
  const L = model.config.nLayers;
  const prompt = tok.encode("The cat sat on the mat. It was happy");
  const fullCache = engine.createCache();
  const fullPrefill = engine.forward(fullCache, engine.embed(prompt), 0, 0, L);
  const fullDecode = engine.forward(fullCache, engine.embed([300]), prompt.length, 0, L);
  for (let K = 0; K <= L; K++) {
    const lo = engine.createCache([0, K]);
    const hi = engine.createCache([K, L]);
    const b = engine.forward(lo, engine.embed(prompt), 0, 0, K);
    assert.deepEqual(engine.forward(hi, b, 0, K, L), fullPrefill, `prefill at K=${K}`);
    const d = engine.forward(lo, engine.embed([300]), prompt.length, 0, K);
    assert.deepEqual(engine.forward(hi, d, prompt.length, K, L), fullDecode, `decode at K=${K}`);
  }
});

Deno.test("prefill of many tokens matches token-by-token decode", () => {
  const engine = new RefEngine(model);
  const L = model.config.nLayers;
  const prompt = tok.encode("Lily and Ben went to the park to play");
  const batch = engine.head(engine.forward(engine.createCache(), engine.embed(prompt), 0, 0, L));
  const cache = engine.createCache();
  const V = model.config.vocabSize;
  prompt.forEach((id, p) => {
    const row = engine.head(engine.forward(cache, engine.embed([id]), p, 0, L));
    for (let i = 0; i < V; i++) {
      assert.ok(Math.abs(row[i] - batch[p * V + i]) < 1e-4, `token ${p} logit ${i}`);
    }
  });
});

Deno.test("sampling: greedy is argmax; seeds reproduce; top-k 1 and tiny top-p are greedy", () => {
  const engine = new RefEngine(model);
  const run = (o: Parameters<typeof generate>[2]) => [...generate(engine, [1], o)];
  const greedy = run({ maxTokens: 30 });
  assert.deepEqual(run({ maxTokens: 30, temperature: 1, topK: 1, seed: 5 }), greedy);
  assert.deepEqual(run({ maxTokens: 30, temperature: 1, topP: 1e-6, seed: 5 }), greedy);
  const a = run({ maxTokens: 30, temperature: 1, seed: 42 });
  assert.deepEqual(run({ maxTokens: 30, temperature: 1, seed: 42 }), a);
  assert.notDeepEqual(run({ maxTokens: 30, temperature: 1, seed: 43 }), a);
  assertTandemError(() => run({ temperature: -1 }), "bad_argument", /temperature/);
  assertTandemError(() => run({ topP: 0 }), "bad_argument", /topP/);
});

Deno.test("temperature sampling follows the softmax distribution", async () => {
  const { Sampler } = await import("../runtime/sampling.ts");
  const logits = new Float32Array([0, Math.log(2), Math.log(3), -Infinity]);
  const s = new Sampler({ temperature: 1, seed: 7 });
  const counts = [0, 0, 0, 0];
  const N = 60000;
  for (let i = 0; i < N; i++) counts[s.sample(logits)]++;
  [1 / 6, 2 / 6, 3 / 6, 0].forEach((p, i) => {
    assert.ok(Math.abs(counts[i] / N - p) < 0.01, `token ${i}: ${counts[i] / N} vs ${p}`);
  });
  const top2 = new Sampler({ temperature: 1, topK: 2, seed: 7 });
  for (let i = 0; i < 1000; i++) assert.ok(top2.sample(logits) >= 1);
});

Deno.test("llama2.c writer round-trips the fixture byte for byte", () => {
  const written = serializeLlama2c(model);
  assert.equal(written.length, modelBytes.length);
  // Everything but the two legacy RoPE tables (ignored by readers) is byte-identical.
  const c = model.config;
  const tables = 2 * c.maxSeqLen * (c.headDim / 2) * 4;
  const tablesAt = modelBytes.length - tables;
  assert.ok(written.subarray(0, tablesAt).every((b, i) => b === modelBytes[i]), "payload differs");
  const a = new Float32Array(written.slice(tablesAt).buffer);
  const b = new Float32Array(modelBytes.slice(tablesAt).buffer);
  assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-6), "RoPE tables differ by more than 1e-6");
  assert.deepEqual(
    parseLlama2c(written).tensors.get("layers.3.w2"),
    model.tensors.get("layers.3.w2"),
  );
});

Deno.test("bad checkpoints get typed errors that name the problem", () => {
  const header = (values: number[]) => {
    const b = new Uint8Array(modelBytes);
    const v = new DataView(b.buffer);
    values.forEach((x, i) => v.setInt32(i * 4, x, true));
    return b;
  };
  assertTandemError(() => parseLlama2c(new Uint8Array(12), "m.bin"), "bad_model", /12 bytes/);
  assertTandemError(
    () => parseLlama2c(modelBytes.subarray(0, modelBytes.length - 100), "m.bin"),
    "bad_model",
    /truncated .*1056440 bytes.*needs 1056540/,
  );
  assertTandemError(
    () => parseLlama2c(new Uint8Array([...modelBytes, 0, 0, 0, 0]), "m.bin"),
    "bad_model",
    /longer than its header/,
  );
  assertTandemError(() => parseLlama2c(header([-64]), "m.bin"), "bad_model", /dim must be/);
  assertTandemError(
    () => parseLlama2c(header([64, 172, 5, 8, 3]), "m.bin"),
    "bad_model",
    /multiple/,
  );
  assertTandemError(() => parseLlama2c(header([0x616b3432]), "m.bin"), "bad_model", /ak42/);
  const nan = new Uint8Array(modelBytes);
  new DataView(nan.buffer).setFloat32(28 + 4 * 100, NaN, true);
  assertTandemError(() => parseLlama2c(nan, "m.bin"), "bad_model", /embed .*non-finite/);
});

Deno.test("bad tokenizer files get typed errors", () => {
  assertTandemError(() => parseLlama2cTokenizer(new Uint8Array(2), 512), "bad_tokenizer", /short/);
  assertTandemError(
    () => parseLlama2cTokenizer(tokBytes.subarray(0, 3000), 512),
    "bad_tokenizer",
    /truncated at token/,
  );
  assertTandemError(() => parseLlama2cTokenizer(tokBytes, 500), "bad_tokenizer", /trailing/);
});

Deno.test("engine refuses out-of-range layers, positions and tokens", () => {
  const engine = new RefEngine(model);
  const cache = engine.createCache([0, 2]);
  const x = engine.embed([1]);
  assertTandemError(() => engine.forward(cache, x, 0, 0, 3), "bad_argument", /cache holds/);
  assertTandemError(() => engine.forward(cache, x, 0, 0, 9), "bad_argument", /holds layers/);
  assertTandemError(() => engine.forward(cache, x, 512, 0, 1), "bad_argument", /context/);
  assertTandemError(() => engine.forward(cache, x.subarray(1), 0, 0, 1), "bad_argument", /dim/);
  assertTandemError(() => engine.embed([512]), "bad_argument", /vocabulary/);
  assertTandemError(() => engine.embed([]), "bad_argument", /empty/);
  const shard: Model = {
    ...model,
    parts: { layers: [2, 5], embed: false, head: true },
    tensors: new Map([...model.tensors].filter(([n]) => !/^layers\.[01]\./.test(n))),
  };
  const edge = new RefEngine(shard);
  assertTandemError(() => edge.embed([1]), "bad_argument", /no token embedding/);
  assertTandemError(
    () => new RefEngine({ ...shard, parts: { layers: [1, 5], embed: false, head: true } }),
    "bad_model",
    /layers\.1\.attn_norm is missing/,
  );
});

Deno.test("tokenizer class is usable from pieces directly", () => {
  const enc = new TextEncoder();
  const t = new Llama2cTokenizer(
    ["<unk>", "<s>", "</s>", " ", "a", "b", " a", "ab"].map((s) => enc.encode(s)),
    new Float32Array([0, 0, 0, 0, 0, 0, 1, 2]),
  );
  assert.deepEqual(t.encode("ab", { bos: false }), [3, 7]);
  assert.deepEqual(t.encode("a", { bos: false }), [6]);
});
