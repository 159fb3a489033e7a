// The router contract: decisions on clear-cut inputs, estimator convergence, accounting and
// the Prometheus format. Pure: no network, no engine.
import assert from "node:assert/strict";
import {
  confidenceOf,
  DEFAULT_THRESHOLDS,
  DefaultPolicy,
  FixedPolicy,
  maxDeviceLayers,
  MetricRegistry,
  MetricsRecorder,
  NetworkEstimator,
  parsePrometheus,
  predictAll,
  predictSplit,
  predictStreamed,
  type RouterInput,
  TtftCorrector,
} from "../runtime/router/mod.ts";
import { modelProfile } from "../runtime/cost.ts";
import { estimatingFetch } from "../runtime/estimating_fetch.ts";
import { FLAG_STREAM, FLAG_TOKENS } from "../runtime/wire.ts";
import type { ModelConfig } from "../runtime/model.ts";

// A Llama-7B-shaped model: compute matters, the boundary row is 4096 values.
const BIG: ModelConfig = {
  dim: 4096,
  hiddenDim: 11008,
  nLayers: 32,
  nHeads: 32,
  nKvHeads: 32,
  headDim: 128,
  vocabSize: 32000,
  maxSeqLen: 4096,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedEmbeddings: false,
  qkvBias: false,
  bosId: 1,
  eosIds: [2],
};
const model = modelProfile(BIG, 0.5625); // q4_0 weights on the device

function input(over: Partial<RouterInput>): RouterInput {
  return {
    model,
    query: { promptTokens: 64, maxTokens: 128 },
    device: { flopsPerSec: 2e11, freeBytes: 8e9, threads: 4 },
    network: { rttMs: 40, rttVarMs: 5, upBytesPerSec: 2e6, downBytesPerSec: 5e6 },
    edge: { available: true, flopsPerSec: 5e13, load: 0.2, queueMs: 0, pricePerFlop: 1e-15 },
    wire: { bytesPerRow: BIG.dim + 4, requestBytes: 400, replyBytesPerToken: 40 },
    ...over,
  };
}

Deno.test("cost model: a pipelined prompt overlaps device, upload and edge chunk by chunk", () => {
  // Device and edge equally fast per layer, prompts batched 2.5× faster than decode rows, f16
  // rows on a 10 Mbit/s uplink: a long prompt split at 28 of 32 finishes its first token
  // before all-cloud (the edge's share runs as chunks arrive), an unpipelined one after it.
  const rate = 5e12,
    at = (pipelineRows: number) =>
      input({
        query: { promptTokens: 320, maxTokens: 64 },
        device: { flopsPerSec: rate, prefillFlopsPerSec: 2.5 * rate, freeBytes: 8e9, threads: 4 },
        edge: {
          available: true,
          flopsPerSec: rate,
          prefillFlopsPerSec: 2.5 * rate,
          load: 0,
          queueMs: 0,
          pricePerFlop: 1e-15,
        },
        network: { rttMs: 50, rttVarMs: 5, upBytesPerSec: 1.25e6, downBytesPerSec: 4e6 },
        wire: {
          bytesPerRow: 4 * 576,
          prefillBytesPerRow: 2 * 576,
          pipelineRows,
          requestBytes: 200,
          replyBytesPerToken: 40,
        },
      });
  const [cloud, piped, whole] = [
    predictAll(at(16))[0],
    predictAll(at(16))[28],
    predictAll(at(0))[28],
  ];
  assert.ok(piped.ttftMs < cloud.ttftMs, `${piped.ttftMs} < ${cloud.ttftMs}`);
  assert.ok(whole.ttftMs > cloud.ttftMs, `${whole.ttftMs} > ${cloud.ttftMs}`);
  // Batched prompt rows: all-cloud's first token costs well under n decode steps.
  const slow =
    predictAll({ ...at(16), edge: { ...at(16).edge, prefillFlopsPerSec: undefined } })[0];
  assert.ok(cloud.ttftMs < 0.5 * slow.ttftMs);
});

Deno.test("token prefill: all-cloud's TTFT for K·n more edge layer-rows; chosen only when row prefill misses the TTFT limit", () => {
  const at = (promptTokens: number, rate: number): RouterInput =>
    input({
      query: { promptTokens, maxTokens: 128 },
      device: {
        flopsPerSec: rate,
        prefillFlopsPerSec: 2.5 * rate,
        freeBytes: 8e9,
        threads: 4,
        heldLayers: 24,
      },
      network: { rttMs: 40, rttVarMs: 5, upBytesPerSec: 1.25e6, downBytesPerSec: 5e6 },
      edge: { available: true, flopsPerSec: 5e13, load: 0, queueMs: 0, pricePerFlop: 1e-15 },
      wire: {
        bytesPerRow: 2 * BIG.dim,
        requestBytes: 400,
        replyBytesPerToken: 40,
        pipelineRows: 16,
      },
      streaming: Array.from({ length: 33 }, () => ({ acceptance: 0.7, maxInFlight: 16 })),
    });
  const short = at(8, 3e12);
  const rows = predictSplit(short, 24, false);
  const tokens = predictSplit(short, 24, false, "tokens");
  assert.equal(tokens.prefill, "tokens");
  assert.ok(Math.abs(tokens.ttftMs - predictSplit(short, 0).ttftMs) < 1e-9, "all-cloud's TTFT");
  assert.ok(rows.ttftMs > tokens.ttftMs + 15);
  const extra = 24 * 8 * model.layerFlops(4.5);
  assert.ok(Math.abs(tokens.edgeFlops - rows.edgeFlops - extra) < 1e-6 * extra, "K·n layer-rows");
  assert.equal(
    predictStreamed(short, 24, { acceptance: 0.7, maxInFlight: 16 }, "tokens").ttftMs,
    tokens.ttftMs,
  );
  // Row prefill misses the limit: without token prefill cloud, with it a split prefilled as ids.
  const policy = new DefaultPolicy({ minTokensPerSec: 10 });
  assert.equal(policy.decide(short).route, "cloud");
  const d = policy.decide({ ...short, tokenPrefill: true });
  assert.equal(d.route, "split");
  assert.equal(d.prefill, "tokens");
  assert.equal(d.predicted.prefill, "tokens");
  assert.match(d.reason, /prompt as token ids \(rows: TTFT \d+ ms > \d+ ms, the limit less/);
  // Rows predicted inside the limit but within the margin (rowPrefillMarginMs): token ids,
  // which meet both limits; with no margin, rows.
  const limit = predictSplit(short, 0).ttftMs + DEFAULT_THRESHOLDS.ttftSlackMs;
  let zone: RouterInput | undefined;
  for (let up = 1.25e6; up < 1.25e9 && !zone; up *= 1.02) {
    const probe = { ...at(8, 5e13), network: { ...short.network, upBytesPerSec: up } };
    const ttft = predictSplit(probe, 24, false).ttftMs;
    if (ttft <= limit - 2 && ttft > limit - DEFAULT_THRESHOLDS.rowPrefillMarginMs + 2) {
      zone = { ...probe, tokenPrefill: true };
    }
  }
  assert.ok(zone, "a device rate whose row prefill lands in the margin");
  assert.equal(policy.decide(zone).prefill, "tokens");
  assert.equal(
    new DefaultPolicy({ minTokensPerSec: 10, rowPrefillMarginMs: 0 }).decide(zone).prefill,
    undefined,
  );
  // A one-token prompt has nothing to prefill: one row, never token ids.
  const one = policy.decide({
    ...short,
    query: { promptTokens: 1, maxTokens: 128 },
    tokenPrefill: true,
  });
  assert.notEqual(one.prefill, "tokens", one.reason);
  // Device and link fast enough for row prefill: it keeps it (fewer cloud FLOPs).
  const quick = at(8, 5e13);
  const fast = policy.decide({
    ...quick,
    network: { ...quick.network, upBytesPerSec: 1.25e8 },
    tokenPrefill: true,
  });
  assert.equal(fast.route, "split");
  assert.equal(fast.prefill, undefined);
  assert.equal(fast.predicted.prefill, undefined);
});

Deno.test("cost model: split 0 puts every FLOP on the edge, split L none, monotone between", () => {
  const all = predictAll(input({}));
  assert.equal(all.length, BIG.nLayers + 1);
  assert.equal(all[0].cloudShare, 1);
  assert.equal(all[BIG.nLayers].edgeFlops, 0);
  for (let k = 1; k <= BIG.nLayers; k++) assert.ok(all[k].edgeFlops < all[k - 1].edgeFlops);
  for (const p of all) {
    assert.ok(Math.abs(p.deviceFlops + p.edgeFlops - all[0].edgeFlops) / all[0].edgeFlops < 1e-9);
  }
});

Deno.test("fast device + bad network: stays on the device", () => {
  const d = new DefaultPolicy().decide(input({
    device: { flopsPerSec: 5e12, freeBytes: 16e9, threads: 8 },
    network: { rttMs: 400, rttVarMs: 100, upBytesPerSec: 5e4, downBytesPerSec: 2e5 },
  }));
  assert.equal(d.route, "local");
  assert.equal(d.split, BIG.nLayers);
  assert.equal(d.predicted.edgeFlops, 0);
  assert.match(d.reason, /^local: 100% less cloud compute/);
});

Deno.test("slow device + LAN: all-cloud, with the reason naming the rejected splits", () => {
  const d = new DefaultPolicy().decide(input({
    device: { flopsPerSec: 5e9, freeBytes: 8e9, threads: 1 },
    network: { rttMs: 1, rttVarMs: 0.2, upBytesPerSec: 1e8, downBytesPerSec: 1e8 },
  }));
  assert.equal(d.route, "cloud");
  assert.equal(d.split, 0);
  assert.match(d.reason, /no split is fast enough/);
});

Deno.test("a device that holds part of the model splits as deep as it can while fast enough", () => {
  const d = new DefaultPolicy().decide(input({
    query: { promptTokens: 16, maxTokens: 128 },
    device: { flopsPerSec: 2e13, freeBytes: 8e9, threads: 8, heldLayers: 20 },
    network: { rttMs: 20, rttVarMs: 2, upBytesPerSec: 1e7, downBytesPerSec: 1e7 },
    speculation: Array(33).fill({ tokensPerRoundTrip: 3, rowsPerToken: 1 }),
  }));
  assert.equal(d.route, "split");
  // The deepest split is the cheapest; one layer shallower is within the savings tolerance
  // and a little faster.
  assert.ok(d.split === 19 || d.split === 20, `split ${d.split}`);
  assert.match(
    d.reason,
    /^split at (19|20): (58|62)% less cloud compute.*drafting up to 6 while top-1 ≥ 0.5 \(3.0 tokens\/trip\)$/,
  );
  assert.ok(d.maxDraft > 0);
  assert.ok(d.predicted.cloudShare < 1);
  assert.ok(d.predicted.ttftMs <= d.baseline.ttftMs + 15);
});

Deno.test("memory bounds the split; no edge means local early exit", () => {
  const inp = input({
    device: { flopsPerSec: 1e12, freeBytes: model.baseBytes + 3.5 * model.layerBytes, threads: 4 },
  });
  assert.equal(maxDeviceLayers(inp), 3);
  const d = new DefaultPolicy().decide({ ...inp, edge: { ...inp.edge, available: false } });
  assert.equal(d.route, "local");
  assert.match(d.reason, /early exit after layer 3/);
});

Deno.test("fixed policies answer their route; step policy drafts while confident", () => {
  assert.equal(new FixedPolicy(0).decide(input({})).route, "cloud");
  const f = new FixedPolicy(4, 3).decide(input({}));
  assert.deepEqual([f.route, f.split, f.maxDraft], ["split", 4, 3]);
  const p = new DefaultPolicy({ draftTop1: 0.5, maxDraft: 2, localTop1: 0.95 });
  const c = (top1: number) => ({ token: 1, top1, margin: 0, entropy: 0 });
  assert.equal(p.step(c(0.97), 0), "local");
  assert.equal(p.step(c(0.97), 1), "draft");
  assert.equal(p.step(c(0.6), 2), "send");
  assert.equal(p.step(c(0.3), 0), "send");
});

Deno.test("draft streaming: rate from device row time, mismatches and RTT; chosen when stop-and-wait is too slow", () => {
  // 16 of 32 layers on a device at ~7 ms a row, a 50 ms link: stop-and-wait waits a trip a token.
  const inp = input({
    query: { promptTokens: 16, maxTokens: 128 },
    device: { flopsPerSec: 9.3e11, freeBytes: 8e9, threads: 4, heldLayers: 16 },
    network: { rttMs: 50, rttVarMs: 5, upBytesPerSec: 2e6, downBytesPerSec: 5e6 },
  });
  const plain = predictSplit(inp, 16, false);
  const sure = predictStreamed(inp, 16, { acceptance: 1, maxInFlight: 64 });
  const never = predictStreamed(inp, 16, { acceptance: 0, maxInFlight: 64 });
  const half = predictStreamed(inp, 16, { acceptance: 0.5, maxInFlight: 16 });
  const row = 1000 * (16 * model.layerFlops(16 + 64) + model.headFlops) / 9.3e11;
  // All drafts confirmed: the first decode token waits a trip, every later one a device row.
  const trip = 1000 / plain.tokensPerSec; // plain split: about a trip per token
  const firstTrip = sure.totalMs - sure.ttftMs - 126 * row;
  assert.ok(Math.abs(firstTrip - trip) / trip < 0.1, `first trip ${firstTrip} vs ${trip}`);
  assert.ok(
    Math.abs(never.tokensPerSec - plain.tokensPerSec) / plain.tokensPerSec < 0.1,
    "no draft confirmed: a trip a token",
  );
  assert.ok(half.tokensPerSec > 1.5 * plain.tokensPerSec);
  assert.equal(half.edgeFlops, plain.edgeFlops, "the edge runs one row per token either way");
  assert.equal(half.ttftMs, plain.ttftMs);
  assert.ok(
    half.rowsSentPerToken! > 1 && half.bytesUp > plain.bytesUp &&
      half.deviceFlops > plain.deviceFlops,
  );
  // With a 25 tok/s floor stop-and-wait is rejected; streaming at 50% agreement passes.
  const policy = new DefaultPolicy({ minTokensPerSec: 25, ttftRatio: 10 });
  assert.equal(policy.decide(inp).route, "cloud");
  const d = policy.decide({
    ...inp,
    streaming: Array(33).fill({ acceptance: 0.5, maxInFlight: 16 }),
  });
  assert.equal(d.route, "split");
  assert.deepEqual(d.streamed, { maxInFlight: 16 });
  assert.equal(d.maxDraft, 0);
  assert.match(d.reason, /streaming drafts \(≤ 16 rows in flight, early-exit agreement 50%/);
  const fixed = new FixedPolicy(16, 0, { acceptance: 0.5, maxInFlight: 16 }).decide(inp);
  assert.deepEqual(fixed.streamed, { maxInFlight: 16 });
  assert.equal(fixed.predicted.tokensPerSec, half.tokensPerSec);
});

Deno.test("confidence: top-1, margin and entropy of a softmax", () => {
  const c = confidenceOf(new Float32Array([Math.log(0.5), Math.log(0.3), Math.log(0.2)]));
  assert.equal(c.token, 0);
  assert.ok(Math.abs(c.top1 - 0.5) < 1e-6);
  assert.ok(Math.abs(c.margin - 0.2) < 1e-6);
  const h = -(0.5 * Math.log(0.5) + 0.3 * Math.log(0.3) + 0.2 * Math.log(0.2));
  assert.ok(Math.abs(c.entropy - h) < 1e-6);
});

Deno.test("network estimator converges to the true RTT and bandwidth", () => {
  const net = new NetworkEstimator({
    prior: { rttMs: 300, upBytesPerSec: 1e5, downBytesPerSec: 1e5 },
  });
  const rtt = 60;
  const up = 2e6;
  let seed = 7;
  const jitter = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 10;
  for (let i = 0; i < 200; i++) {
    const big = i % 4 === 0;
    const bytesUp = big ? 200_000 : 300;
    net.observe({
      wallMs: rtt + 1000 * bytesUp / up + jitter() + 2,
      bytesUp,
      bytesDown: 100,
      serverMs: 2,
    });
  }
  const s = net.state;
  assert.ok(Math.abs(s.rttMs - rtt) < 5, `rtt ${s.rttMs}`);
  assert.ok(s.rttVarMs < 5, `rttvar ${s.rttVarMs}`);
  assert.ok(Math.abs(s.upBytesPerSec - up) / up < 0.15, `up ${s.upBytesPerSec}`);
  assert.ok(Math.abs(net.predictMs(1000, 100) - (rtt + 0.5)) < 6);
});

Deno.test("accounting: totals, TTFT and tokens per round trip", () => {
  let t = 0;
  const rec = new MetricsRecorder({ route: "split", split: 3, promptTokens: 4 }, () => t);
  t = 10;
  rec.roundTrip({ bytesUp: 500, bytesDown: 60, rows: 4, answered: 1 });
  rec.flops(300, 200);
  rec.tokens(1);
  t = 30;
  rec.roundTrip({ bytesUp: 300, bytesDown: 120, rows: 3, drafted: 2, accepted: 2, answered: 3 });
  rec.tokens(3);
  const m = rec.finish();
  assert.equal(m.ttftMs, 10);
  assert.equal(m.totalMs, 30);
  assert.equal(m.tokens, 4);
  assert.equal(m.bytesUp, 800);
  assert.equal(m.roundTrips, 2);
  assert.equal(m.tokensPerRoundTrip, 3);
  assert.equal(m.edgeShare, 0.4);
  assert.equal(m.tokensPerSec, 150);
});

Deno.test("Prometheus text: formats, escapes and parses back", () => {
  const reg = new MetricRegistry();
  reg.counter("tandem_edge_flops_total", "FLOPs run by the edge.").inc({ model: "m" }, 1.5e9);
  reg.counter("tandem_edge_frames_total", "Frames.").inc({ kind: 'dr"aft' });
  reg.gauge("tandem_edge_sessions", "Sessions held.").set({}, 3);
  const text = reg.format();
  assert.match(text, /# TYPE tandem_edge_flops_total counter\n/);
  const samples = parsePrometheus(text);
  assert.deepEqual(samples, [
    { name: "tandem_edge_flops_total", labels: { model: "m" }, value: 1.5e9 },
    { name: "tandem_edge_frames_total", labels: { kind: 'dr"aft' }, value: 1 },
    { name: "tandem_edge_sessions", labels: {}, value: 3 },
  ]);
  assert.throws(() => parsePrometheus("bad line here\n"), SyntaxError);
});

Deno.test("estimating fetch feeds each completed request into the estimator", async () => {
  const net = new NetworkEstimator({ prior: { rttMs: 500 } });
  const inner = (_: RequestInfo | URL, _init?: RequestInit) =>
    new Promise<Response>((r) => setTimeout(() => r(new Response("x".repeat(50))), 20));
  const f = estimatingFetch(net, inner as typeof fetch);
  for (let i = 0; i < 3; i++) {
    const res = await f("http://edge.invalid/v1/x", { method: "POST", body: new Uint8Array(100) });
    assert.equal((await res.text()).length, 50);
  }
  assert.equal(net.samples, 3);
  assert.ok(net.state.rttMs >= 15 && net.state.rttMs < 200, `rtt ${net.state.rttMs}`);
  // A generation stream measures the edge's generation, not the link: not observed.
  for (const route of ["/v1/generate", "/v1/chat/completions"]) {
    await (await f(`http://edge.invalid${route}`, { method: "POST", body: "{}" })).text();
  }
  assert.equal(net.samples, 3);
  // bytesUp sees each observed request's url and raw body size.
  const seen: [string, number][] = [];
  const scaled = estimatingFetch(net, inner as typeof fetch, {
    bytesUp: (url, raw) => (seen.push([url, raw]), raw * 9),
  });
  await (await scaled("http://edge.invalid/v1/s/forward", {
    method: "POST",
    body: new Uint8Array(7),
  }))
    .text();
  assert.deepEqual(seen, [["http://edge.invalid/v1/s/forward", 7]]);
  assert.equal(net.samples, 4);
  // A draft stream row waits for the rows before it: not observed either.
  const row = new Uint8Array(16);
  row.set([0x54, 0x4e, 0x44, 0x57, 1, 1]);
  row[10] = FLAG_STREAM | FLAG_TOKENS;
  await (await f("http://edge.invalid/v1/s/forward", { method: "POST", body: row })).text();
  assert.equal(net.samples, 4);
});

Deno.test("cost model: a split without an open session pays the opening request in its TTFT", () => {
  const base = input({});
  const K = 12;
  const open = predictSplit({ ...base, openSessions: [K] }, K, false);
  const closed = predictSplit({ ...base, openSessions: [4] }, K, false);
  const assumed = predictSplit(base, K, false);
  const { network: net, wire } = base;
  const openMs = 1000 * wire.requestBytes / net.upBytesPerSec + net.rttMs +
    1000 * wire.requestBytes / net.downBytesPerSec;
  assert.equal(open.ttftMs, assumed.ttftMs, "absent: sessions taken as open");
  assert.ok(Math.abs(closed.ttftMs - open.ttftMs - openMs) < 1e-9);
  assert.ok(Math.abs(closed.totalMs - open.totalMs - openMs) < 1e-9);
  assert.equal(closed.roundTrips, open.roundTrips + 1);
  assert.equal(closed.edgeFlops, open.edgeFlops);
  // Draft streaming takes the plain split's TTFT, so it pays it too.
  const stream = { acceptance: 0.6, maxInFlight: 8 };
  assert.ok(
    Math.abs(
      predictStreamed({ ...base, openSessions: [] }, K, stream).ttftMs -
        predictStreamed({ ...base, openSessions: [K] }, K, stream).ttftMs - openMs,
    ) < 1e-9,
  );
});

Deno.test("TTFT corrector: a smoothed gap per prefill kind, added to that kind's predictions", () => {
  const ttft = new TtftCorrector();
  assert.deepEqual(ttft.state, {});
  ttft.observe("rows", 52, 12);
  assert.equal(ttft.state.rows, 10, "a quarter of the 40 ms gap");
  // The next prediction includes the correction: the gap left is 30 ms.
  ttft.observe("rows", 52, 22);
  assert.equal(ttft.state.rows, 17.5);
  ttft.observe("ids", 10, 14);
  assert.equal(ttft.state.ids, -1);
  for (const bad of [NaN, -1, Infinity]) ttft.observe("ids", bad, 10);
  assert.equal(ttft.state.ids, -1, "bad times are ignored");
  assert.equal(ttft.samples, 3);
  // An app restores what it saved; bad settings are refused.
  const saved = JSON.parse(JSON.stringify(ttft.state));
  assert.deepEqual(new TtftCorrector({ prior: saved }).state, ttft.state);
  assert.equal(new TtftCorrector({ prior: { rows: 5e3 } }).state.rows, 1000, "clamped");
  for (
    const bad of [{ weight: 0 }, { weight: 2 }, { maxMs: -1 }, { prior: { rows: NaN } }, {
      prior: { cloud: 1 } as never,
    }]
  ) {
    assert.throws(() => new TtftCorrector(bad), RangeError);
  }
  ttft.observe("cloud" as never, 100, 0);
  assert.equal(ttft.samples, 3, "unknown kinds are ignored");
  const wild = new TtftCorrector({ weight: 1, maxMs: 100 });
  wild.observe("ids", 1e6, 10);
  assert.equal(wild.state.ids, 100, "clamped");

  // The cost model adds the correction of the route's kind, to TTFT and total alike: rows to a
  // split's row prefill, ids to all-cloud and to a split's token prefill (the same path).
  const base = input({ tokenPrefill: true });
  const K = 12;
  const bias = { rows: 30, ids: 7 };
  const biased = { ...base, ttftBiasMs: bias };
  const cases = [["rows", K, "rows"], ["ids", K, "tokens"], ["ids", 0, "rows"]] as const;
  for (const [kind, at, prefill] of cases) {
    const a = predictSplit(base, at, false, prefill), b = predictSplit(biased, at, false, prefill);
    assert.ok(Math.abs(b.ttftMs - a.ttftMs - bias[kind]) < 1e-9, `${kind} at ${at}`);
    // (Token prefill decodes once the device's own prefill is done too: its total may not move.)
    if (prefill === "rows") assert.ok(Math.abs(b.totalMs - a.totalMs - bias[kind]) < 1e-9, kind);
  }
  assert.equal(predictSplit({ ...base, ttftBiasMs: { rows: -1e9 } }, K, false).ttftMs, 0);
});

/**
 * A fast device (24 layers held) on a fast link whose prompt rows pipeline in chunks of 16, with
 * token prefill offered: a split with row prefill well inside the TTFT limit.
 */
function fastSplit(promptTokens: number): RouterInput {
  return input({
    query: { promptTokens, maxTokens: 128 },
    device: {
      flopsPerSec: 5e13,
      prefillFlopsPerSec: 1.25e14,
      freeBytes: 8e9,
      threads: 4,
      heldLayers: 24,
    },
    network: { rttMs: 40, rttVarMs: 5, upBytesPerSec: 1.25e8, downBytesPerSec: 5e6 },
    edge: { available: true, flopsPerSec: 5e13, load: 0, queueMs: 0, pricePerFlop: 1e-15 },
    wire: { bytesPerRow: 2 * BIG.dim, requestBytes: 400, replyBytesPerToken: 40, pipelineRows: 16 },
    tokenPrefill: true,
  });
}

Deno.test("TTFT corrector: a host whose row prefill runs late moves the policy to token prefill", () => {
  // A split whose rows are predicted inside the TTFT limit by more than the margin...
  const policy = new DefaultPolicy({ minTokensPerSec: 10 });
  const base = fastSplit(8);
  const first = policy.decide(base);
  assert.equal(first.route, "split");
  assert.equal(first.prefill, undefined);
  // ...but measured 40 ms later each time (say, a stalled upload): after a few queries the
  // corrected rows miss the limit, and the prompt goes as token ids.
  const ttft = new TtftCorrector();
  let d = first;
  for (let q = 0; q < 12 && d.prefill !== "tokens"; q++) {
    const raw = d.predicted.ttftMs - (ttft.state.rows ?? 0);
    ttft.observe("rows", raw + 40, d.predicted.ttftMs);
    d = policy.decide({ ...base, ttftBiasMs: ttft.state });
  }
  assert.equal(d.route, "split");
  assert.equal(d.prefill, "tokens");
  assert.match(d.reason, /prompt as token ids/);
});

Deno.test("whole-prompt rows: chosen when pipelined rows are learned late and one frame is not", () => {
  const policy = new DefaultPolicy({ minTokensPerSec: 10 });
  const base = fastSplit(64);
  // The cost model: one frame is the unpipelined prediction, corrected as `rows`; pipelined
  // rows are corrected as `pipelined`.
  const K = 24;
  const piped = predictSplit(base, K, false), whole = predictSplit(base, K, false, "whole");
  assert.equal(piped.prefill, undefined);
  assert.equal(whole.prefill, "whole");
  const unpiped = predictSplit({ ...base, wire: { ...base.wire, pipelineRows: 0 } }, K, false);
  assert.ok(Math.abs(whole.ttftMs - unpiped.ttftMs) < 1e-9);
  assert.equal(whole.edgeFlops, piped.edgeFlops, "same rows, same cloud FLOPs");
  const bias = { pipelined: 100, rows: 3 };
  assert.ok(
    Math.abs(predictSplit({ ...base, ttftBiasMs: bias }, K, false).ttftMs - piped.ttftMs - 100) <
      1e-9,
  );
  assert.ok(
    Math.abs(
      predictSplit({ ...base, ttftBiasMs: bias }, K, false, "whole").ttftMs - whole.ttftMs - 3,
    ) < 1e-9,
  );
  // A prompt no longer than a chunk is never pipelined: no separate whole-prompt choice.
  assert.equal(
    predictSplit({ ...base, query: { promptTokens: 16, maxTokens: 128 } }, K, false, "whole")
      .prefill,
    undefined,
  );

  // The policy: pipelined rows first; learned late, the same rows in one frame (the split's
  // savings kept), not token ids.
  const first = policy.decide(base);
  assert.equal(first.route, "split");
  assert.equal(first.prefill, undefined);
  const late = policy.decide({ ...base, ttftBiasMs: { pipelined: 60 } });
  assert.equal(late.route, "split");
  assert.equal(late.prefill, "whole", late.reason);
  assert.match(late.reason, /prompt rows in one frame \(pipelined: TTFT \d+ ms\)/);
  // One frame late too: token ids, which cost the edge the whole prompt.
  const both = policy.decide({ ...base, ttftBiasMs: { pipelined: 60, rows: 60 } });
  assert.equal(both.prefill, "tokens", both.reason);
  assert.ok(late.predicted.cloudShare < both.predicted.cloudShare);
});
