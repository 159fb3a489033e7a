// Draft streaming (wire 1.1) over real HTTP on loopback: the device sends each row as soon as
// it has computed it, several in flight; the edge computes only rows on its verified branch.
// Greedy tokens equal the whole model's at several K; stale rows cost the edge nothing; frames
// arriving out of order are held and run in sequence order; lost requests and a restarted edge
// recover with identical tokens; malformed stream frames get a 4xx.
import assert from "node:assert/strict";
import { generate } from "../runtime/generate.ts";
import { hexToBytes } from "../runtime/digest.ts";
import { createSession } from "../runtime/session.ts";
import { rowsFlops } from "../runtime/cost.ts";
import { headFlops } from "../runtime/model.ts";
import { generateStreamed } from "../runtime/draft_stream.ts";
import { parsePrometheus } from "../runtime/router/prometheus.ts";
import { FixedPolicy } from "../runtime/router/policy.ts";
import { routedGenerate } from "../runtime/routed.ts";
import { encodeFrame, FLAG_STREAM, FLAG_TOKENS } from "../runtime/wire.ts";
import { createEdgeApp, type EdgeOptions } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { withEdge, withRestartingEdge } from "./_edge.ts";
import { startFaultProxy } from "./_fault_proxy.ts";
import { device, EDGE, full, ID, model, modelDigest, PROMPTS } from "./_stories.ts";

const c = model.config;
const L = c.nLayers;

async function stream(
  url: string,
  K: number,
  prompt: number[],
  max: number,
  o: { maxInFlight?: number; timeoutMs?: number; retries?: number } = {},
) {
  const engine = device(K);
  const session = await createSession({
    engine,
    modelId: ID,
    modelDigest,
    split: K,
    edge: url,
    timeoutMs: o.timeoutMs,
    retries: o.retries,
    retryDelayMs: 5,
  });
  const run = generateStreamed(session, engine, prompt, {
    maxTokens: max,
    maxInFlight: o.maxInFlight,
  });
  const tokens = await Array.fromAsync(run);
  await session.close();
  return { tokens, metrics: run.metrics(), stats: session.stats };
}

Deno.test("draft streaming: greedy tokens equal the whole model's at K = 1..4, over HTTP", async () => {
  await withEdge(EDGE, async (url) => {
    for (const K of [1, 2, 3, 4]) {
      for (const prompt of PROMPTS) {
        const want = [...generate(full, prompt, { maxTokens: 60 })];
        const { tokens, metrics: m } = await stream(url, K, prompt, 60);
        assert.deepEqual(tokens, want, `K=${K}`);
        // The edge ran the prompt and exactly one row per token after the first.
        const edge = rowsFlops(c, L - K, 0, prompt.length + want.length - 1) +
          want.length * headFlops(c);
        assert.equal(m.edgeFlops, edge, `K=${K}: edge FLOPs = a plain split's`);
        assert.equal(m.edgeRows, prompt.length + want.length - 1);
        assert.ok(m.roundTrips >= want.length);
        if (K === 4) {
          assert.ok(m.tokensPerRoundTrip > 1, `K=4: ${m.tokensPerRoundTrip} tokens per trip`);
        }
      }
    }
  });
});

/** An in-process edge with a session at K whose prompt frame has run; frames to drive it. */
async function manual(K: number, limits: EdgeOptions["limits"] = {}) {
  const edge = await createEdgeApp({ ...EDGE, limits });
  const res = await edge.app.request("/v1/sessions", {
    method: "POST",
    body: JSON.stringify({ model: ID, split: K, digest: modelDigest }),
  });
  const info = await res.json();
  assert.deepEqual(info.stream, {
    maxHeld: edge.limits.streamMaxHeld,
    holdMs: edge.limits.streamHoldMs,
  });
  assert.equal(info.wire, "1.2");
  const dev = device(K);
  const cache = dev.createCache([0, K]);
  const session = hexToBytes(info.id.replaceAll("-", ""));
  const digest = hexToBytes(modelDigest);
  const frame = (pos: number, seq: number, tokens: number[], flags: number) =>
    encodeFrame({
      dtype: "f32",
      flags,
      split: K,
      dim: c.dim,
      pos,
      seq,
      session,
      digest,
      modelId: ID,
      tokens: flags & FLAG_TOKENS ? Uint32Array.from(tokens) : undefined,
      rows: dev.forward(cache, dev.embed(tokens), pos, 0, K),
    });
  const post = async (bytes: Uint8Array<ArrayBuffer>) => {
    const r = await edge.app.request(`/v1/sessions/${info.id}/forward`, {
      method: "POST",
      body: bytes,
    });
    const text = await r.text();
    return {
      status: r.status,
      text,
      lines: r.ok ? text.trim().split("\n").map((l) => JSON.parse(l)) : [JSON.parse(text)],
    };
  };
  const metrics = async () => {
    const samples = parsePrometheus(await (await edge.app.request("/metrics")).text());
    const sum = (name: string, kind?: string) =>
      samples.filter((s) => s.name === name && (!kind || s.labels.kind === kind))
        .reduce((a, s) => a + s.value, 0);
    return {
      flops: sum("tandem_edge_flops_total"),
      stale: sum("tandem_edge_frames_total", "stale"),
      stream: sum("tandem_edge_frames_total", "stream"),
    };
  };
  return { edge, info, frame, post, metrics };
}

Deno.test("draft streaming: the edge computes a row only on its verified branch; stale rows cost nothing", async () => {
  const K = 4;
  const prompt = PROMPTS[0];
  const want = [...generate(full, prompt, { maxTokens: 4 })];
  const m = await manual(K);
  try {
    const n = prompt.length;
    const first = await m.post(m.frame(0, 0, prompt, 0));
    assert.equal(first.lines[0].token, want[0]);
    const before = await m.metrics();
    // A wrong token at the edge's position: stale, with the edge's token; nothing computed.
    const wrong = (want[0] + 1) % c.vocabSize;
    const a = await m.post(m.frame(n, 1, [wrong], FLAG_STREAM | FLAG_TOKENS));
    assert.deepEqual(a.lines.length, 1);
    assert.equal(a.lines[0].stale, true);
    assert.equal(a.lines[0].next, want[0]);
    assert.equal(a.lines[0].length, n);
    // A row beyond the edge's position (a dead branch): stale too.
    const b = await m.post(m.frame(n + 1, 2, [want[1]], FLAG_STREAM | FLAG_TOKENS));
    assert.equal(b.lines[0].stale, true);
    const mid = await m.metrics();
    assert.equal(mid.flops, before.flops, "stale rows run no FLOPs on the edge");
    assert.equal(mid.stale - before.stale, 2);
    // The verified token at the edge's position: computed, answers the next token.
    const d = await m.post(m.frame(n, 3, [want[0]], FLAG_STREAM | FLAG_TOKENS));
    assert.deepEqual(d.lines[0], { token: want[1], pos: n + 1 });
    assert.equal(d.lines[1].accepted, 1);
    const after = await m.metrics();
    assert.equal(after.flops - mid.flops, rowsFlops(c, L - K, n, 1) + headFlops(c));
    assert.equal(after.stream - mid.stream, 1);
  } finally {
    m.edge.dispose();
  }
});

Deno.test("draft streaming: frames arriving out of order are held and run in sequence order", async () => {
  const K = 3;
  const prompt = PROMPTS[1];
  const want = [...generate(full, prompt, { maxTokens: 5 })];
  const m = await manual(K);
  try {
    const n = prompt.length;
    await m.post(m.frame(0, 0, prompt, 0));
    const f = [0, 1, 2, 3].map((i) => m.frame(n + i, 1 + i, [want[i]], FLAG_STREAM | FLAG_TOKENS));
    // Sent last first: each waits for its predecessors, then all answer in order.
    const answers = await Promise.all([m.post(f[3]), m.post(f[2]), m.post(f[1]), m.post(f[0])]);
    assert.deepEqual(answers.map((a) => a.lines[0].token), [want[4], want[3], want[2], want[1]]);
    // A resend gets the stored answer; the same number with other bytes is a conflict.
    assert.equal((await m.post(f[1])).lines[0].token, want[2]);
    const altered = await m.post(m.frame(n + 1, 2, [want[0]], FLAG_STREAM | FLAG_TOKENS));
    assert.equal(altered.status, 409);
    assert.equal(altered.lines[0].error.code, "conflict");
  } finally {
    m.edge.dispose();
  }
});

Deno.test("draft streaming: malformed, unreachable or abandoned stream frames get a 4xx, never a hang", async () => {
  const K = 2;
  const prompt = PROMPTS[1];
  const m = await manual(K, { streamMaxHeld: 2, streamHoldMs: 150 });
  try {
    const n = prompt.length;
    await m.post(m.frame(0, 0, prompt, 0));
    const two = await m.post(m.frame(n, 1, [5, 6], FLAG_STREAM | FLAG_TOKENS));
    assert.equal(two.status, 400);
    assert.equal(two.lines[0].error.code, "bad_frame");
    const untokened = await m.post(m.frame(n, 1, [5], FLAG_STREAM));
    assert.equal(untokened.status, 400);
    assert.match(untokened.lines[0].error.message, /exactly one row with its token/);
    const far = await m.post(m.frame(n, 9, [5], FLAG_STREAM | FLAG_TOKENS));
    assert.equal(far.status, 409);
    assert.match(far.lines[0].error.message, /too far ahead/);
    // Held for its predecessor, which never comes: 409 after the hold time.
    const t0 = performance.now();
    const gap = await m.post(m.frame(n + 1, 2, [5], FLAG_STREAM | FLAG_TOKENS));
    assert.equal(gap.status, 409);
    assert.match(gap.lines[0].error.message, /waited 150 ms/);
    assert.ok(performance.now() - t0 < 2000);
    assert.equal(m.edge.sessions.size, 1);
  } finally {
    m.edge.dispose();
  }
});

Deno.test("draft streaming: a session dropped while frames wait answers them session_not_found at once", async () => {
  const K = 2;
  const prompt = PROMPTS[1];
  const m = await manual(K, { streamHoldMs: 5000 });
  try {
    await m.post(m.frame(0, 0, prompt, 0));
    const t0 = performance.now();
    const held = m.post(m.frame(prompt.length + 1, 2, [5], FLAG_STREAM | FLAG_TOKENS));
    const del = await m.edge.app.request(`/v1/sessions/${m.info.id}`, { method: "DELETE" });
    assert.equal(del.status, 204);
    const answer = await held;
    assert.equal(answer.status, 404);
    assert.equal(answer.lines[0].error.code, "session_not_found");
    assert.ok(performance.now() - t0 < 1000, "not at the hold timeout");
  } finally {
    m.edge.dispose();
  }
});

Deno.test("draft streaming: lost requests and answers are resent and run once; identical tokens", async () => {
  const K = 4;
  const prompt = PROMPTS[0];
  const want = [...generate(full, prompt, { maxTokens: 40 })];
  const edge = await createEdgeApp(EDGE);
  const server = serveEdge(edge.fetch);
  let forwards = 0;
  const proxy = startFaultProxy(server.url, (req) => {
    if (!new URL(req.url).pathname.endsWith("/forward")) return "pass";
    forwards++;
    return forwards === 4 ? "drop-request" : forwards === 7 ? "drop-answer" : "pass";
  });
  try {
    const { tokens, stats } = await stream(proxy.url, K, prompt, 40, { timeoutMs: 400 });
    assert.deepEqual(tokens, want);
    assert.equal(stats.recoveries, 0);
    assert.equal(proxy.log.filter((l) => l.fault !== '"pass"').length, 2);
    // Every row ran once on the edge: the prompt, then one row per token after the first.
    const samples = parsePrometheus(await (await edge.app.request("/metrics")).text());
    const rows = samples.filter((x) => x.name === "tandem_edge_rows_total")
      .reduce((a, x) => a + x.value, 0);
    assert.equal(rows, prompt.length + want.length - 1);
  } finally {
    await proxy.close();
    await server.close();
    edge.dispose();
  }
});

Deno.test("draft streaming: the edge restarted mid-stream is rebuilt by replay; identical tokens", async () => {
  const K = 3;
  const prompt = PROMPTS[0];
  const want = [...generate(full, prompt, { maxTokens: 50 })];
  // Edge A "restarts" at the 12th forward (every session it held is gone) and the device
  // reaches edge B from then on.
  await withRestartingEdge(EDGE, 12, async (url) => {
    const { tokens, stats } = await stream(url, K, prompt, 50, { timeoutMs: 2000 });
    assert.deepEqual(tokens, want);
    assert.ok(stats.recoveries >= 1, `${stats.recoveries} recoveries`);
    assert.ok(stats.replayedRows >= prompt.length - 1, `${stats.replayedRows} rows replayed`);
  });
});

Deno.test("routedGenerate: a streaming decision streams drafts; the log and metrics say so", async () => {
  await withEdge(EDGE, async (url) => {
    const K = 4;
    const prompt = PROMPTS[0];
    const want = [...generate(full, prompt, { maxTokens: 48 })];
    const run = routedGenerate(device(K), prompt, {
      edge: url,
      modelId: ID,
      modelDigest,
      policy: new FixedPolicy(K, 0, { acceptance: 0.5, maxInFlight: 8 }),
      maxTokens: 48,
    });
    assert.deepEqual(await Array.fromAsync(run), want);
    const [d] = run.decisions();
    assert.equal(d.route, "split");
    assert.deepEqual(d.streamed, { maxInFlight: 8 });
    const m = run.metrics();
    assert.equal(
      m.edgeFlops,
      rowsFlops(c, L - K, 0, prompt.length + want.length - 1) + want.length * headFlops(c),
    );
    assert.ok(m.tokensPerRoundTrip > 1, `${m.tokensPerRoundTrip} tokens per round trip waited`);
    assert.ok(m.roundTrips > want.length, "every row is its own request");
  });
});
