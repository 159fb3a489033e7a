// Split inference over real HTTP on loopback: device shard [0, K) here, edge [K, L) + head
// behind Deno.serve. Greedy f32 must equal the all-local run exactly at every K.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { makeShard } from "../runtime/shard.ts";
import { createSession } from "../runtime/session.ts";
import { TandemError } from "../runtime/errors.ts";
import type { WireDtype } from "../runtime/wire.ts";
import { withEdge as serveTestEdge } from "./_edge.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
const L = model.config.nLayers;
const ID = "stories260K";
const full = new RefEngine(model);
const PROMPTS = [
  [tok.bosId],
  tok.encode("Once upon a time, there was a dog"),
  tok.encode("Tom and Sue went"),
];

const withEdge = (fn: (url: string) => Promise<void>) =>
  serveTestEdge({ models: [{ id: ID, model }] }, fn);

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

Deno.test("greedy split generation equals the all-local run at every K (f32 on the wire)", async () => {
  await withEdge(async (url) => {
    for (let k = 1; k < L; k++) {
      const device = await makeShard(model, ID, "device", k);
      for (const prompt of PROMPTS) {
        const want = [...generate(full, prompt, { maxTokens: 120 })];
        const session = await createSession({
          model: device.model,
          modelDigest: device.modelDigest,
          modelId: ID,
          split: k,
          edge: url,
          wire: "f32",
        });
        const got = await collect(session.generate(prompt, { maxTokens: 120 }));
        await session.close();
        assert.deepEqual(got, want, `split at ${k}, prompt ${prompt.length} tokens`);
        assert.ok(got.length > 20);
        assert.equal(session.stats.recoveries, 0);
        assert.equal(session.stats.roundTrips, got.length + (got.length < 120 ? 1 : 0));
      }
    }
  });
});

Deno.test("the story from BOS reads as the fixture says, split at 2", async () => {
  await withEdge(async (url) => {
    const session = await createSession({ model, modelId: ID, split: 2, edge: url });
    const got = await collect(session.generate([tok.bosId], { maxTokens: 30 }));
    await session.close();
    assert.match(
      tok.decode([tok.bosId, ...got]),
      /^Once upon a time, there was a little girl named Lily/,
    );
  });
});

/** Teacher-forced agreement: at each position of the local greedy text, does the split pick the same next token? */
async function agreement(
  url: string,
  wire: WireDtype,
  k: number,
): Promise<{ same: number; total: number; prefix: number }> {
  let same = 0;
  let total = 0;
  let prefix = 0;
  for (const prompt of PROMPTS) {
    const want = [...generate(full, prompt, { maxTokens: 200, stopAtEos: false })];
    const session = await createSession({ model, modelId: ID, split: k, edge: url, wire });
    let next = (await session.step(prompt))[0].token;
    for (let i = 0; i < want.length; i++) {
      if (next === want[i]) same++;
      total++;
      if (i + 1 < want.length) next = (await session.step([want[i]]))[0].token;
    }
    const free = await createSession({ model, modelId: ID, split: k, edge: url, wire });
    const got = await collect(free.generate(prompt, { maxTokens: 200, stopAtEos: false }));
    prefix += got.findIndex((t, i) => t !== want[i]) === -1
      ? got.length
      : got.findIndex((t, i) => t !== want[i]);
    await session.close();
    await free.close();
  }
  return { same, total, prefix };
}

Deno.test("int8 and f16 on the wire: token agreement ≥ 99% over long greedy samples", async () => {
  await withEdge(async (url) => {
    for (const wire of ["int8", "f16"] as const) {
      for (const k of [1, 3]) {
        const { same, total, prefix } = await agreement(url, wire, k);
        const rate = same / total;
        console.log(
          `${wire} split ${k}: ${same}/${total} = ${
            (100 * rate).toFixed(2)
          }% teacher-forced; free-running identical prefix ${prefix} tokens`,
        );
        assert.ok(total >= 600);
        assert.ok(rate >= 0.99, `${wire} at ${k}: agreement ${rate}`);
      }
    }
  });
});

Deno.test("a device with another model's weights is refused with model_mismatch", async () => {
  await withEdge(async (url) => {
    const tensors = new Map(model.tensors);
    const w = tensors.get("layers.0.wq")!;
    tensors.set("layers.0.wq", { shape: w.shape, data: w.data.map((x) => x * 1.01) });
    const other = { ...model, tensors };
    await assert.rejects(
      createSession({ model: other, modelId: ID, split: 2, edge: url }),
      (e: unknown) => {
        assert.ok(e instanceof TandemError);
        assert.equal(e.code, "model_mismatch");
        assert.match(e.message, /the two halves are different models/);
        assert.equal(e.details?.status, 409);
        return true;
      },
    );
  });
});

Deno.test("draft frames: the edge accepts the right drafts and rolls back the rest", async () => {
  await withEdge(async (url) => {
    const want = [...generate(full, [tok.bosId], { maxTokens: 12 })];
    const session = await createSession({ model, modelId: ID, split: 2, edge: url, topK: 3 });
    const first = await session.step([tok.bosId]);
    assert.equal(first[0].token, want[0]);
    assert.equal(first[0].top!.length, 3);
    assert.equal(first[0].top![0][0], want[0]);
    // Four correct drafts: all accepted, plus the edge's own next token.
    const all = await session.step([want[0], want[1], want[2], want[3], want[4]], { draft: true });
    assert.deepEqual(all.map((t) => t.token), want.slice(1, 6));
    assert.equal(session.length, 6);
    // A wrong second draft: the first is accepted, the rest rolled back on both sides.
    const wrong = (want[6] + 1) % 512;
    const part = await session.step([want[5], want[6], wrong, 7], { draft: true });
    assert.deepEqual(part.map((t) => t.token), [want[6], want[7]]);
    assert.equal(session.length, 8);
    const next = await session.step([want[7]]);
    assert.equal(next[0].token, want[8]);
    await session.close();
  });
});
