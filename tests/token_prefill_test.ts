// Token prefill (wire 1.2) over real HTTP on loopback: the device sends the prompt's token ids,
// the edge runs the whole model over them and answers the first token while the device computes
// its own [0, K) cache; decoding (draft streaming or plain split) continues from there. Greedy
// tokens equal the whole model's; the edge's FLOPs counter shows the prompt over all layers; an
// edge shard without [0, K) refuses with a 4xx and the router falls back to rows; a restarted
// edge is rebuilt by replaying the token ids.
import assert from "node:assert/strict";
import { generate } from "../runtime/generate.ts";
import { cutModel } from "../runtime/shard.ts";
import { hexToBytes } from "../runtime/digest.ts";
import { createSession } from "../runtime/session.ts";
import { rowsFlops } from "../runtime/cost.ts";
import { headFlops } from "../runtime/model.ts";
import { generateStreamed } from "../runtime/draft_stream.ts";
import { generateSpeculative } from "../runtime/speculate_session.ts";
import { parsePrometheus } from "../runtime/router/prometheus.ts";
import { FixedPolicy } from "../runtime/router/policy.ts";
import { routedGenerate } from "../runtime/routed.ts";
import { decodeFrame, encodeFrame, FLAG_EMBED, FLAG_STREAM, FLAG_TOKENS } from "../runtime/wire.ts";
import { TandemError } from "../runtime/errors.ts";
import { createEdgeApp, type EdgeOptions } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { withEdge, withRestartingEdge } from "./_edge.ts";
import { device, EDGE, full, ID, model, modelDigest, PROMPTS } from "./_stories.ts";

const c = model.config;
const L = c.nLayers;

async function edgeFlops(url: string): Promise<number> {
  const samples = parsePrometheus(await (await fetch(`${url}/metrics`)).text());
  return samples.filter((s) => s.name === "tandem_edge_flops_total")
    .reduce((a, s) => a + s.value, 0);
}

Deno.test("wire 1.2: an EMBED frame carries token ids and no rows", () => {
  const bytes = encodeFrame({
    dtype: "f32",
    flags: FLAG_EMBED,
    split: 2,
    dim: 64,
    pos: 0,
    seq: 0,
    session: new Uint8Array(16),
    digest: new Uint8Array(32),
    modelId: ID,
    tokens: Uint32Array.of(1, 2, 3),
    rows: new Float32Array(0),
  });
  assert.equal(bytes.byteLength, 92 + 12);
  const f = decodeFrame(bytes);
  assert.deepEqual([...f.tokens!], [1, 2, 3]);
  assert.equal(f.rows.length, 0);
  assert.equal(bytes[5], 2, "minor 2");
  for (const other of [FLAG_TOKENS, FLAG_STREAM]) {
    const mixed = bytes.slice();
    new DataView(mixed.buffer).setUint16(10, FLAG_EMBED | other, true);
    assert.throws(
      () => decodeFrame(mixed),
      (e) =>
        e instanceof TandemError && e.code === "bad_frame" && /EMBED .*excludes/.test(e.message),
    );
  }
  assert.throws(
    () => decodeFrame(bytes.subarray(0, bytes.byteLength - 2)),
    (e) =>
      e instanceof TandemError && e.code === "bad_frame" &&
      /header says 3 token ids \(104 bytes\), the frame holds 102 bytes/.test(e.message),
  );
});

Deno.test("token prefill + draft streaming / plain split: the whole model's tokens at K = 2..4; the edge counts the prompt over all layers", async () => {
  await withEdge(EDGE, async (url) => {
    for (const K of [2, 3, 4]) {
      for (const [i, prompt] of PROMPTS.entries()) {
        const want = [...generate(full, prompt, { maxTokens: 40 })];
        const engine = device(K);
        const session = await createSession({
          engine,
          modelId: ID,
          modelDigest,
          split: K,
          edge: url,
        });
        assert.equal(session.tokenPrefill, true, "a whole-model edge advertises token prefill");
        const before = await edgeFlops(url);
        const streamed = i === 0 || K === 3;
        const run = streamed
          ? generateStreamed(session, engine, prompt, { maxTokens: 40, tokenPrefill: true })
          : generateSpeculative(session, engine, prompt, {
            maxTokens: 40,
            policy: "plain",
            tokenPrefill: true,
          });
        const tokens = await Array.fromAsync(run);
        await session.close();
        assert.deepEqual(tokens, want, `K=${K} ${streamed ? "streamed" : "plain"}`);
        assert.equal(session.lastPrefill, "tokens");
        const n = prompt.length;
        const expected = rowsFlops(c, L, 0, n) + rowsFlops(c, L - K, n, want.length - 1) +
          want.length * headFlops(c);
        assert.equal(run.metrics().edgeFlops, expected, `K=${K}: device-side accounting`);
        const counted = (await edgeFlops(url)) - before;
        assert.ok(Math.abs(counted - expected) < 1e-6 * expected, `K=${K}: edge counter`);
      }
    }
  });
});

Deno.test("token prefill then draft streaming: the stream's first row frees the edge's [0, K) KV and the budget sees it", async () => {
  const K = 3;
  const edge = await createEdgeApp(EDGE);
  const server = serveEdge(edge.fetch);
  try {
    const engine = device(K);
    const session = await createSession({
      engine,
      modelId: ID,
      modelDigest,
      split: K,
      edge: server.url,
    });
    const run = generateStreamed(session, engine, PROMPTS[0], {
      maxTokens: 20,
      tokenPrefill: true,
    });
    assert.equal((await Array.fromAsync(run)).length, 20);
    assert.equal(session.lastPrefill, "tokens");
    const held = edge.sessions.get(session.id);
    assert.equal(held.lower, undefined, "the token prefill's [0, K) cache is freed");
    assert.equal(held.bytes, held.cache.bytes, "the session is charged what it holds");
    await session.close();
  } finally {
    await server.close();
    edge.dispose();
  }
});

Deno.test("token prefill: an edge shard without [0, K) refuses with 4xx; the router falls back to rows", async () => {
  const K = 3;
  const shard = cutModel(model, { layers: [K, L], embed: true, head: true });
  const options: EdgeOptions = { models: [{ id: ID, model: shard, digest: modelDigest }] };
  await withEdge(options, async (url) => {
    const info = await (await fetch(`${url}/v1/sessions`, {
      method: "POST",
      body: JSON.stringify({ model: ID, split: K, digest: modelDigest }),
    })).json();
    assert.equal(info.tokenPrefill, false);
    const res = await fetch(`${url}/v1/sessions/${info.id}/forward`, {
      method: "POST",
      body: encodeFrame({
        dtype: "f32",
        flags: FLAG_EMBED,
        split: K,
        dim: c.dim,
        pos: 0,
        seq: 0,
        session: hexToBytes(info.id.replaceAll("-", "")),
        digest: hexToBytes(modelDigest),
        modelId: ID,
        tokens: Uint32Array.from(PROMPTS[0]),
        rows: new Float32Array(0),
      }),
    });
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /token prefill needs the embedding/);

    const prompt = PROMPTS[0];
    const want = [...generate(full, prompt, { maxTokens: 30 })];
    const policy = new FixedPolicy(K, 0, { acceptance: 0.5, maxInFlight: 8 }, "tokens");
    const opts = { edge: url, modelId: ID, modelDigest, policy, maxTokens: 30 };
    // The session answer says no: rows at once, and the log says so.
    const a = routedGenerate(device(K), prompt, opts);
    assert.deepEqual(await Array.fromAsync(a), want);
    assert.match(a.decisions()[0].reason, /cannot prefill from token ids: rows instead/);
    assert.equal(a.decisions()[0].prefill, undefined);
    // An edge that claims it (a lying or stale answer) and refuses: the rows go after the 4xx.
    const claiming: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      if (!String(input).endsWith("/v1/sessions")) return r;
      const body = { ...await r.json(), tokenPrefill: true };
      return new Response(JSON.stringify(body), { status: r.status, headers: r.headers });
    };
    const b = routedGenerate(device(K), prompt, { ...opts, fetch: claiming });
    assert.deepEqual(await Array.fromAsync(b), want);
    assert.match(b.decisions()[0].reason, /the edge refused token prefill: rows instead/);
    const m = b.metrics();
    assert.equal(
      m.edgeFlops,
      rowsFlops(c, L - K, 0, prompt.length + want.length - 1) + want.length * headFlops(c),
      "rows: a plain split's edge FLOPs",
    );
  });
});

Deno.test("token prefill: an edge restarted after the prompt is rebuilt by replaying the token ids; identical tokens", async () => {
  for (const streamed of [true, false]) {
    const K = 2;
    const prompt = PROMPTS[0];
    const want = [...generate(full, prompt, { maxTokens: 30 })];
    let replayedTokens = 0;
    await withRestartingEdge(EDGE, 6, async (url, forwards) => {
      const counting: typeof fetch = (input, init) => {
        const body = init?.body;
        if (body instanceof Uint8Array && body.byteLength > 12 && forwards() >= 6) {
          const flags = new DataView(body.buffer, body.byteOffset).getUint16(10, true);
          if (flags & FLAG_EMBED) replayedTokens++;
        }
        return fetch(input, init);
      };
      const engine = device(K);
      const session = await createSession({
        engine,
        modelId: ID,
        modelDigest,
        split: K,
        edge: url,
        timeoutMs: 2000,
        retryDelayMs: 5,
        fetch: counting,
      });
      const run = streamed
        ? generateStreamed(session, engine, prompt, { maxTokens: 30, tokenPrefill: true })
        : generateSpeculative(session, engine, prompt, {
          maxTokens: 30,
          policy: "plain",
          tokenPrefill: true,
        });
      assert.deepEqual(await Array.fromAsync(run), want, streamed ? "streamed" : "plain");
      assert.equal(session.lastPrefill, "tokens");
      assert.ok(session.stats.recoveries >= 1, `${session.stats.recoveries} recoveries`);
      assert.ok(replayedTokens >= 1, "the replay resent the prompt as token ids");
      await session.close();
    });
  }
});
