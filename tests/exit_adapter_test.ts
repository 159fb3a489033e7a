// Exit adapters (runtime/exit_adapter.ts): fitted by distillation on text the model samples
// itself, they make the early-exit head after layer K agree with the whole model more often on
// other text; fitting is deterministic; drafting through one changes no output (speculation,
// draft streaming over HTTP, routedGenerate) and waits for fewer round trips; files round-trip
// and bad ones are refused with typed errors.
import assert from "node:assert/strict";
import { sampleCalibration } from "../runtime/calibrate.ts";
import { earlyExitGenerate } from "../runtime/early_exit.ts";
import {
  applyExitAdapter,
  draftLogits,
  exitAgreement,
  fitExitAdapter,
  identityExitAdapter,
  parseExitAdapters,
  serializeExitAdapters,
} from "../runtime/exit_adapter.ts";
import { TandemError } from "../runtime/errors.ts";
import { generate } from "../runtime/generate.ts";
import { DefaultPolicy, FixedPolicy } from "../runtime/router/policy.ts";
import { routedGenerate } from "../runtime/routed.ts";
import { argmax } from "../runtime/sampling.ts";
import { cutModel } from "../runtime/shard.ts";
import { speculativeSplit } from "../runtime/speculate.ts";
import { withEdge } from "./_edge.ts";
import { device, EDGE, full, ID, model, modelDigest, PROMPTS } from "./_stories.ts";

const K = 4;
const fitted = fitExitAdapter(model, K, { count: 8, length: 128, epochs: 3 });
const adapter = fitted.adapter;
/** Text the adapter was not fitted on (other seeds). */
const heldOut = sampleCalibration(full, 4, 128, 100);

const isCode = (code: string) => (e: unknown) => e instanceof TandemError && e.code === code;

Deno.test("exit adapter: the early-exit head after layer 4 agrees with the whole model more often on held-out text", () => {
  const plain = exitAgreement(model, K, undefined, heldOut);
  const adapted = exitAgreement(model, K, adapter, heldOut);
  console.log(
    `held-out agreement: plain ${(100 * plain).toFixed(1)}%, adapted ${
      (100 * adapted).toFixed(1)
    }% (training text ${(100 * fitted.plainAgreement).toFixed(1)}% → ${
      (100 * fitted.agreement).toFixed(1)
    }%)`,
  );
  assert.ok(adapted >= plain + 0.05, `adapted ${adapted} vs plain ${plain}`);
  assert.ok(fitted.agreement > fitted.plainAgreement);
});

Deno.test("exit adapter: fitting is deterministic; the identity adapter is the plain head", () => {
  const a = fitExitAdapter(model, 3, { count: 2, length: 48, epochs: 1 }).adapter;
  const b = fitExitAdapter(model, 3, { count: 2, length: 48, epochs: 1 }).adapter;
  assert.deepEqual(a.weight, b.weight);
  assert.deepEqual(a.bias, b.bias);
  const id = identityExitAdapter(3, model.config.dim);
  const rows = full.forward(full.createCache([0, 3]), full.embed(heldOut[0]), 0, 0, 3);
  const V = model.config.vocabSize;
  const plain = full.head(rows), through = draftLogits(full, rows, 3, id);
  for (let t = 0; t < heldOut[0].length; t++) {
    assert.equal(argmax(through, t * V, V), argmax(plain, t * V, V), `position ${t}`);
  }
});

Deno.test("exit adapter: speculation drafts through it with the whole model's tokens and more tokens per round trip", () => {
  const policy = new DefaultPolicy({ draftTop1: 0.3, maxDraft: 6 });
  let plainTrips = 0, adaptedTrips = 0, tokens = 0;
  for (const prompt of PROMPTS) {
    const want = [...generate(full, prompt, { maxTokens: 64 })];
    for (const exitAdapter of [undefined, adapter]) {
      const run = speculativeSplit(device(K), full, prompt, {
        split: K,
        maxTokens: 64,
        policy,
        exitAdapter,
      });
      const out: number[] = [];
      let r = run.next();
      for (; !r.done; r = run.next()) out.push(r.value);
      assert.deepEqual(out, want);
      if (exitAdapter) adaptedTrips += r.value.roundTrips;
      else plainTrips += r.value.roundTrips;
    }
    tokens += want.length;
  }
  console.log(
    `tokens per round trip: plain ${tokens / plainTrips}, adapted ${tokens / adaptedTrips}`,
  );
  assert.ok(adaptedTrips < plainTrips, `${adaptedTrips} vs ${plainTrips} round trips`);
});

Deno.test("exit adapter: draft streaming over HTTP through routedGenerate — same tokens, fewer trips waited", async () => {
  await withEdge(EDGE, async (url) => {
    let plainWaits = 0, adaptedWaits = 0;
    for (const prompt of PROMPTS) {
      const want = [...generate(full, prompt, { maxTokens: 48 })];
      for (const exitAdapters of [undefined, [adapter]]) {
        const run = routedGenerate(device(K), prompt, {
          edge: url,
          modelId: ID,
          modelDigest,
          policy: new FixedPolicy(K, 0, { acceptance: 0.5, maxInFlight: 8 }),
          maxTokens: 48,
          exitAdapters,
        });
        assert.deepEqual(await Array.fromAsync(run), want);
        const m = run.metrics();
        const waits = (want.length - 1) / m.tokensPerRoundTrip;
        if (exitAdapters) adaptedWaits += waits;
        else plainWaits += waits;
      }
    }
    assert.ok(adaptedWaits < plainWaits, `${adaptedWaits} vs ${plainWaits} trips waited`);
  });
});

Deno.test("exit adapter: local early exit reads through it; adapters for other splits are refused", () => {
  const dev = device(K);
  const ctx = PROMPTS[0];
  const got = [...earlyExitGenerate(dev, ctx, 12, false, adapter)];
  // By hand: layers [0, K) then the head through the adapter, token by token.
  const cache = dev.createCache([0, K]);
  let h = dev.forward(cache, dev.embed(ctx), 0, 0, K);
  const want: number[] = [];
  for (let pos = ctx.length; want.length < 12; pos++) {
    const t = argmax(dev.head(applyExitAdapter(adapter, h.subarray(h.length - model.config.dim))));
    want.push(t);
    h = dev.forward(cache, dev.embed([t]), pos, 0, K);
  }
  assert.deepEqual(got, want);
  assert.throws(
    () => [...earlyExitGenerate(device(3), ctx, 4, false, adapter)],
    isCode("bad_argument"),
  );
  assert.throws(
    () => speculativeSplit(device(3), full, ctx, { split: 3, exitAdapter: adapter }).next(),
    isCode("bad_argument"),
  );
});

Deno.test("exit adapter: files round-trip; bad files, shapes and options get typed errors", () => {
  const other = identityExitAdapter(2, model.config.dim);
  const bytes = serializeExitAdapters([adapter, other]);
  const back = parseExitAdapters(bytes, model.config.dim);
  assert.deepEqual(back.map((a) => a.split), [2, 4]);
  assert.deepEqual(back[1].weight, adapter.weight);
  assert.deepEqual(back[1].bias, adapter.bias);
  assert.throws(() => parseExitAdapters(bytes, 32), isCode("bad_model"));
  assert.throws(
    () => parseExitAdapters(bytes.subarray(0, 40), model.config.dim),
    isCode("bad_model"),
  );
  assert.throws(
    () => parseExitAdapters(serializeExitAdapters([]), model.config.dim),
    isCode("bad_model"),
  );
  assert.throws(() => fitExitAdapter(model, 0), isCode("bad_argument"));
  assert.throws(() => fitExitAdapter(model, model.config.nLayers), isCode("bad_argument"));
  assert.throws(() => fitExitAdapter(model, 2, { epochs: -1 }), isCode("bad_argument"));
  const shard = cutModel(model, { layers: [0, 4], embed: true, head: true });
  assert.throws(() => fitExitAdapter(shard, 2), isCode("bad_argument"));
  assert.throws(() => applyExitAdapter(adapter, new Float32Array(10)), isCode("bad_argument"));
});
