// loadModel on local paths: llama2.c checkpoints, HF folders (stories260K converted by our
// writer), parts, and the errors a user sees for missing or corrupt files.
import assert from "node:assert/strict";
import { loadModel } from "../hosts/load.ts";
import { modelToHf } from "../runtime/formats/hf.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import type { Model } from "../runtime/model.ts";
import { assertTandemError } from "./_fixtures.ts";

const SHARED = new URL("../../shared/models/", import.meta.url).pathname;
const BIN = SHARED + "stories260K/stories260K.bin";
const TOK = SHARED + "stories260K/tok512.bin";
const HF = SHARED + "stories260K-hf/";

const greedy = (
  model: Model,
  n: number,
): number[] => [...generate(new RefEngine(model), [1], { maxTokens: n, temperature: 0 })];

/** A temp dir with these files; removed after `fn`. */
async function withDir(
  files: Record<string, Uint8Array>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tandem-load-" });
  try {
    for (const [name, bytes] of Object.entries(files)) {
      await Deno.writeFile(`${dir}/${name}`, bytes);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadModel reads a llama2.c checkpoint with the tokenizer beside it", async () => {
  const { model, tokenizer, description } = await loadModel(BIN);
  assert.match(description, /stories260K\.bin \(llama2\.c, 5 layers, dim 64, 0\.26M params\)/);
  assert.deepEqual(tokenizer.encode("Once upon a time"), [1, 403, 407, 261, 378]);
  assert.equal(
    tokenizer.decode([1, ...greedy(model, 20)]).slice(0, 40),
    "Once upon a time, there was a little gir",
  );
});

Deno.test("stories260K written as an HF folder loads back with the same greedy tokens", async () => {
  const { model } = await loadModel(BIN);
  const files: Record<string, Uint8Array> = Object.fromEntries(modelToHf(model, { dtype: "F32" }));
  files["tokenizer.json"] = await Deno.readFile(HF + "tokenizer.json");
  files["tokenizer_config.json"] = await Deno.readFile(HF + "tokenizer_config.json");
  await withDir(files, async (dir) => {
    const hf = await loadModel(dir);
    assert.match(hf.description, /Hugging Face safetensors, 5 layers/);
    assert.deepEqual(greedy(hf.model, 80), greedy(model, 80));
    assert.deepEqual(hf.tokenizer.encode("Once upon a time"), [1, 403, 407, 261, 378]);
    const viaConfig = await loadModel(`${dir}/config.json`, {
      parts: { layers: [0, 2], head: false },
    });
    assert.deepEqual(viaConfig.model.parts, { layers: [0, 2], embed: true, head: false });
    assert.equal(viaConfig.model.tensors.has("layers.2.wq"), false);
    // bf16 storage: greedy decoding still tells the same story's start.
    const bf16 = Object.fromEntries(modelToHf(model, { dtype: "BF16" }));
    await Deno.writeFile(`${dir}/model.safetensors`, bf16["model.safetensors"]);
    const text = hf.tokenizer.decode([1, ...greedy((await loadModel(dir)).model, 12)]);
    assert.match(text, /^Once upon a time/);
  });
});

Deno.test("loadModel names missing and corrupt files", async () => {
  await assertTandemError(
    () => loadModel("/nonexistent/model.bin"),
    "not_found",
    /Cannot load \/nonexistent\/model\.bin: no such file or directory/,
  );
  await assertTandemError(() => loadModel(""), "bad_argument", /no model given/);
  const bin = await Deno.readFile(BIN);
  await withDir({ "model.bin": bin.subarray(0, 12) }, async (dir) => {
    await assertTandemError(
      () => loadModel(`${dir}/model.bin`),
      "bad_model",
      new RegExp(`Cannot load ${dir}/model\\.bin: file is 12 bytes`),
    );
  });
  await withDir({ "model.bin": bin.subarray(0, 5000) }, async (dir) => {
    await assertTandemError(
      () => loadModel(`${dir}/model.bin`),
      "bad_model",
      /model\.bin: file is truncated \(5000 bytes/,
    );
  });
  await withDir({ "model.bin": bin }, async (dir) => {
    await assertTandemError(
      () => loadModel(`${dir}/model.bin`),
      "bad_tokenizer",
      new RegExp(
        `No tokenizer found beside ${dir}/model\\.bin: looked for tok512\\.bin, tokenizer\\.bin; pass --tokenizer`,
      ),
    );
    const { tokenizer } = await loadModel(`${dir}/model.bin`, { tokenizer: TOK });
    assert.equal(tokenizer.vocabSize, 512);
    await assertTandemError(
      () => loadModel(`${dir}/model.bin`, { tokenizer: `${dir}/nope.bin` }),
      "bad_tokenizer",
      /nope\.bin: no such file/,
    );
    const viaJson = await loadModel(`${dir}/model.bin`, { tokenizer: HF + "tokenizer.json" });
    assert.deepEqual(viaJson.tokenizer.encode("Once upon a time"), [1, 403, 407, 261, 378]);
  });
  await assertTandemError(
    () => loadModel(HF),
    "bad_model",
    /stories260K-hf: no weights found .*ONNX/,
  );
  await assertTandemError(
    () => loadModel(BIN, { parts: { layers: [3, 9] } }),
    "bad_argument",
    /layers \[3,9\]/,
  );
});
