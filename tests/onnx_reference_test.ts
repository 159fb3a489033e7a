// An independent reference: the same trained model exported to ONNX (../shared/models/
// stories260K-hf, the graph transformers.js runs), executed by onnxruntime-web's wasm backend.
// Our reference forward pass must give the same logits and the same greedy tokens.
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { argmax } from "../runtime/sampling.ts";

const SHARED = new URL("../../shared/models/", import.meta.url);
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url).href;

const i64 = (xs: number[]) => BigInt64Array.from(xs.map(BigInt));

Deno.test("reference forward pass matches the ONNX export: logits and greedy tokens", async () => {
  const model = parseLlama2c(await Deno.readFile(new URL("stories260K/stories260K.bin", SHARED)));
  const session = await ort.InferenceSession.create(
    await Deno.readFile(new URL("stories260K-hf/onnx/model.onnx", SHARED)),
  );
  const { nLayers, nKvHeads, headDim, vocabSize } = model.config;
  const engine = new RefEngine(model);
  const cache = engine.createCache();

  let ids = [1, 403, 407, 261, 378, 432, 383]; // "Once upon a time, there"
  let pos = 0;
  let past: Record<string, ort.Tensor> = {};
  for (let l = 0; l < nLayers; l++) {
    for (const kv of ["key", "value"]) {
      past[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(), [
        1,
        nKvHeads,
        0,
        headDim,
      ]);
    }
  }
  let worst = 0;
  const theirs: number[] = [];
  const ours: number[] = [];
  for (let step = 0; step < 40; step++) {
    const n = ids.length;
    const out = await session.run({
      input_ids: new ort.Tensor("int64", i64(ids), [1, n]),
      attention_mask: new ort.Tensor("int64", i64(Array(pos + n).fill(1)), [1, pos + n]),
      position_ids: new ort.Tensor("int64", i64(ids.map((_, i) => pos + i)), [1, n]),
      ...past,
    });
    const ref = out.logits.data as Float32Array; // [1, n, vocab]
    const mine = engine.head(engine.forward(cache, engine.embed(ids), pos, 0, nLayers));
    assert.equal(mine.length, ref.length);
    for (let i = 0; i < ref.length; i++) {
      worst = Math.max(worst, Math.abs(mine[i] - ref[i]) / (1 + Math.abs(ref[i])));
    }
    const last = (n - 1) * vocabSize;
    theirs.push(argmax(ref, last, vocabSize));
    ours.push(argmax(mine, last, vocabSize));
    past = {};
    for (let l = 0; l < nLayers; l++) {
      for (const kv of ["key", "value"]) {
        past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
      }
    }
    pos += n;
    ids = [theirs[theirs.length - 1]];
  }
  assert.ok(worst < 1e-4, `worst relative logit difference ${worst}`);
  assert.deepEqual(ours, theirs);
  await session.release();
});
