// Self-speculation over real HTTP on loopback: a device session drafts with its early-exit
// head, the edge app verifies; tokens equal plain split decoding exactly, in fewer round trips,
// and the device's accounting agrees with the edge's /metrics.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { cutModel } from "../runtime/shard.ts";
import { digestModel } from "../runtime/digest.ts";
import { createSession } from "../runtime/session.ts";
import { rowsFlops } from "../runtime/cost.ts";
import { headFlops } from "../runtime/model.ts";
import { generateSpeculative } from "../runtime/speculate_session.ts";
import { DefaultPolicy } from "../runtime/router/policy.ts";
import { parsePrometheus } from "../runtime/router/prometheus.ts";
import { withEdge as serveTestEdge } from "./_edge.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
const { modelDigest } = await digestModel(model);
const L = model.config.nLayers;
const ID = "stories260K";
const full = new RefEngine(model);
const PROMPTS = [tok.encode("Once upon a time, there was a dog"), tok.encode("Tom and Sue went")];

const withEdge = (fn: (url: string) => Promise<void>) =>
  serveTestEdge({ models: [{ id: ID, model }] }, fn);

async function open(url: string, K: number) {
  const engine = new RefEngine(cutModel(model, { layers: [0, K], embed: true, head: true }));
  const session = await createSession({ engine, modelId: ID, modelDigest, split: K, edge: url });
  return { engine, session };
}

Deno.test("speculative session: exact plain-split tokens, < 1 round trip per token, over HTTP", async () => {
  await withEdge(async (url) => {
    for (const K of [3, 4]) {
      for (const prompt of PROMPTS) {
        const want = [...generate(full, prompt, { maxTokens: 60 })];
        const plain = await open(url, K);
        const p = generateSpeculative(plain.session, plain.engine, prompt, {
          maxTokens: 60,
          policy: "plain",
        });
        assert.deepEqual(await Array.fromAsync(p), want, `plain K=${K}`);
        const pm = p.metrics();
        assert.equal(pm.roundTrips, want.length);
        const positions = prompt.length + want.length - 1;
        assert.equal(
          pm.deviceFlops + pm.edgeFlops,
          rowsFlops(model.config, L, 0, positions) + want.length * headFlops(model.config),
          "plain: device + edge FLOPs = the whole model's",
        );
        assert.equal(pm.bytesUp, plain.session.stats.bytesSent);
        await plain.session.close();

        const s = await open(url, K);
        const run = generateSpeculative(s.session, s.engine, prompt, {
          maxTokens: 60,
          policy: new DefaultPolicy({ draftTop1: 0.2, maxDraft: 5 }),
        });
        assert.deepEqual(await Array.fromAsync(run), want, `speculative K=${K}`);
        const m = run.metrics();
        assert.equal(m.tokens, want.length);
        if (K === 4) {
          assert.ok(m.roundTrips < m.tokens, `${m.roundTrips} trips, ${m.tokens} tokens`);
        }
        assert.ok(m.accepted <= m.drafted);
        assert.equal(m.bytesUp, s.session.stats.bytesSent);
        assert.equal(m.bytesDown, s.session.stats.bytesReceived);
        assert.ok(m.ttftMs > 0 && m.totalMs >= m.ttftMs);
        await s.session.close();
      }
    }
  });
});

Deno.test("edge /metrics: Prometheus text whose counters match the device's accounting", async () => {
  await withEdge(async (url) => {
    const s = await open(url, 4);
    const run = generateSpeculative(s.session, s.engine, PROMPTS[0], {
      maxTokens: 40,
      policy: new DefaultPolicy({ draftTop1: 0.2, maxDraft: 5 }),
    });
    const tokens = await Array.fromAsync(run);
    const m = run.metrics();
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const samples = parsePrometheus(await res.text());
    const sum = (name: string) =>
      samples.filter((x) => x.name === name).reduce((a, x) => a + x.value, 0);
    assert.equal(sum("tandem_edge_flops_total"), m.edgeFlops);
    assert.equal(sum("tandem_edge_draft_tokens_total"), m.drafted);
    assert.equal(sum("tandem_edge_draft_accepted_total"), m.accepted);
    assert.ok(sum("tandem_edge_tokens_total") >= tokens.length);
    assert.equal(sum("tandem_edge_bytes_received_total"), m.bytesUp);
    assert.equal(sum("tandem_edge_frames_total"), m.roundTrips);
    assert.equal(sum("tandem_edge_sessions"), 1);
    await s.session.close();
  });
});
