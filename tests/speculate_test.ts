// Self-speculative split decoding (engine level, both halves in process): greedy output equals
// plain split decoding and the whole model exactly, in fewer round trips than tokens.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { cutModel } from "../runtime/shard.ts";
import { rowsFlops } from "../runtime/cost.ts";
import { headFlops } from "../runtime/model.ts";
import { type SpeculationStats, speculativeSplit, verifyRows } from "../runtime/speculate.ts";
import { DefaultPolicy } from "../runtime/router/policy.ts";
import type { Engine } from "../runtime/engine.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
const L = model.config.nLayers;
const full = new RefEngine(model);
const PROMPTS = [
  [tok.bosId],
  tok.encode("Once upon a time, there was a dog"),
  tok.encode("Tom and Sue went to the park. They"),
];

function runAll(
  device: Engine,
  edge: Engine,
  prompt: number[],
  options: Parameters<typeof speculativeSplit>[3],
): { tokens: number[]; stats: SpeculationStats } {
  const gen = speculativeSplit(device, edge, prompt, options);
  const tokens: number[] = [];
  for (let r = gen.next();; r = gen.next()) {
    if (r.done) return { tokens, stats: r.value };
    tokens.push(r.value);
  }
}

function deviceFor(K: number): Engine {
  return new RefEngine(cutModel(model, { layers: [0, K], embed: true, head: true }));
}

Deno.test("speculation gives exactly the plain split tokens, with < 1 round trip per token", () => {
  const edge = new RefEngine(cutModel(model, { layers: [0, L], embed: false, head: true }));
  for (const K of [2, 3, 4]) {
    const device = deviceFor(K);
    for (const prompt of PROMPTS) {
      const want = [...generate(full, prompt, { maxTokens: 80 })];
      const plain = runAll(device, edge, prompt, { split: K, maxTokens: 80, policy: "plain" });
      assert.deepEqual(plain.tokens, want, `plain split K=${K}`);
      assert.equal(plain.stats.roundTrips, want.length, "plain: one round trip per token");
      const spec = runAll(device, edge, prompt, {
        split: K,
        maxTokens: 80,
        policy: new DefaultPolicy({ draftTop1: 0, maxDraft: 4 }),
      });
      assert.deepEqual(spec.tokens, want, `speculative K=${K} prompt ${prompt.length}`);
      assert.ok(
        spec.stats.roundTrips < spec.tokens.length,
        `K=${K}: ${spec.stats.roundTrips} round trips for ${spec.tokens.length} tokens`,
      );
      assert.ok(spec.stats.accepted > 0 && spec.stats.accepted <= spec.stats.drafted);
    }
  }
});

Deno.test("speculation with the default (adaptive) policy is exact too", () => {
  for (const K of [3, 4]) {
    const device = deviceFor(K);
    for (const prompt of PROMPTS) {
      const want = [...generate(full, prompt, { maxTokens: 60 })];
      const got = runAll(device, full, prompt, { split: K, maxTokens: 60 });
      assert.deepEqual(got.tokens, want);
      assert.ok(got.stats.roundTrips <= got.tokens.length);
    }
  }
});

Deno.test("budgets and EOS: never more than maxTokens, and drafting stops at the budget", () => {
  const device = deviceFor(4);
  for (const maxTokens of [1, 2, 3, 7]) {
    const want = [...generate(full, PROMPTS[1], { maxTokens })];
    const got = runAll(device, full, PROMPTS[1], {
      split: 4,
      maxTokens,
      policy: new DefaultPolicy({ draftTop1: 0, maxDraft: 8 }),
    });
    assert.deepEqual(got.tokens, want);
  }
});

Deno.test("plain split accounting: device + edge FLOPs = the whole model's for the same tokens", () => {
  const K = 3;
  const prompt = PROMPTS[2];
  const got = runAll(deviceFor(K), full, prompt, { split: K, maxTokens: 30, policy: "plain" });
  const n = got.tokens.length;
  // Positions run: the prompt, then every yielded token but the last; one head per token.
  const positions = prompt.length + n - 1;
  const whole = rowsFlops(model.config, L, 0, positions) + n * headFlops(model.config);
  assert.equal(got.stats.deviceFlops + got.stats.edgeFlops, whole);
  assert.equal(got.stats.edgeRows, positions);
});

Deno.test("verifyRows accepts the matching prefix and answers the edge's next token", () => {
  const K = 2;
  const prompt = PROMPTS[1];
  const want = [...generate(full, prompt, { maxTokens: 4 })];
  const dev = full.createCache([0, K]);
  const edgeCache = full.createCache([K, L]);
  const rowsOf = (ids: number[], pos: number) => full.forward(dev, full.embed(ids), pos, 0, K);
  verifyRows(full, edgeCache, K, rowsOf(prompt.slice(0, -1), 0), 0);
  const p = prompt.length - 1;
  // Drafts: the right first token, then a wrong one.
  const wrong = (want[1] + 1) % 512;
  const tokens = [prompt[p], want[0], wrong, 5];
  const v = verifyRows(full, edgeCache, K, rowsOf(tokens, p), p, tokens);
  assert.deepEqual(v, { tokens: [want[0], want[1]], accepted: 1 });
  // Resuming at the accepted position overwrites the rejected rows.
  const v2 = verifyRows(full, edgeCache, K, rowsOf([want[1]], p + 2), p + 2);
  assert.deepEqual(v2.tokens, [want[2]]);
});
