// The routed generator over real HTTP on loopback: split (with drafts, f32 wire, plain and
// pipelined prompts) and cloud (the token-id route) give exactly the all-cloud greedy tokens;
// f16 prompts stay close; a slow edge mid-generation falls back to the device's early-exit
// head, flagged degraded in the decision log; the token route streams and validates.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { cutModel } from "../runtime/shard.ts";
import { digestModel } from "../runtime/digest.ts";
import { openRoutedSession, routedGenerate, type RoutedOptions } from "../runtime/routed.ts";
import { NetworkEstimator } from "../runtime/router/network.ts";
import { TtftCorrector } from "../runtime/router/ttft_corrector.ts";
import { earlyExitGenerate } from "../runtime/early_exit.ts";
import { DefaultPolicy, FixedPolicy } from "../runtime/router/policy.ts";
import { createEdgeApp } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { startFaultProxy } from "./_fault_proxy.ts";
import { withEdge as serveTestEdge } from "./_edge.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
const modelDigest = (await digestModel(model)).modelDigest!;
const ID = "stories260K";
const full = new RefEngine(model);
const device = new RefEngine(cutModel(model, { layers: [0, 4], embed: true, head: true }));
const SHORT = tok.encode("Once upon a time, there was a dog");
const LONG = tok.encode(
  "Lily and her mom went to the store. They wanted to buy a big red apple and some milk. " +
    "The store was busy and Lily held her mom's hand. Then she saw",
);
const N = 40;
const want = (p: number[]) => [...generate(full, p, { maxTokens: N })];

const withEdge = (fn: (url: string) => Promise<void>) =>
  serveTestEdge({ models: [{ id: ID, model }] }, fn);

const base = (edge: string) => ({ edge, modelId: ID, modelDigest, maxTokens: N });

Deno.test("routed: split with drafts, plain and pipelined f32 prompts, equals all-cloud", async () => {
  await withEdge(async (url) => {
    for (const prompt of [SHORT, LONG]) {
      for (const pipelineRows of [0, 8]) {
        const run = routedGenerate(device, prompt, {
          ...base(url),
          policy: new FixedPolicy(4, 6),
          wire: { decode: "f32", prefill: "f32", pipelineRows },
        });
        assert.deepEqual(await Array.fromAsync(run), want(prompt));
        const [d] = run.decisions();
        assert.equal(d.route, "split");
        assert.equal(d.degraded, false);
        const m = run.metrics();
        assert.ok(m.edgeFlops > 0 && m.deviceFlops > m.edgeFlops);
        assert.ok(m.tokensPerRoundTrip >= 1);
      }
    }
  });
});

Deno.test("routed: f16 prompt rows with f32 decode stay close to all-cloud", async () => {
  await withEdge(async (url) => {
    const got = await Array.fromAsync(routedGenerate(device, LONG, {
      ...base(url),
      policy: new FixedPolicy(4, 6),
      wire: { decode: "f32", prefill: "f16", pipelineRows: 8 },
    }));
    const ref = want(LONG);
    const same = got.filter((t, i) => t === ref[i]).length;
    assert.ok(same >= ref.length * 0.9, `${same}/${ref.length}`);
  });
});

Deno.test("routed: cloud route sends token ids and streams the all-cloud tokens", async () => {
  await withEdge(async (url) => {
    const run = routedGenerate(device, SHORT, { ...base(url), policy: new FixedPolicy(0) });
    assert.deepEqual(await Array.fromAsync(run), want(SHORT));
    const m = run.metrics();
    assert.equal(m.route, "cloud");
    assert.equal(m.deviceFlops, 0);
    assert.ok(m.bytesUp > 0 && m.bytesDown > 0);
    // The default policy on loopback decides something; whatever it is, f32 is exact.
    const auto = routedGenerate(device, SHORT, { ...base(url), policy: new DefaultPolicy() });
    assert.deepEqual(await Array.fromAsync(auto), want(SHORT));
    assert.match(auto.decisions()[0].reason, /cloud|split|local/);
  });
});

Deno.test("routed: token route validates its input", async () => {
  await withEdge(async (url) => {
    const bad = await fetch(`${url}/v1/generate`, {
      method: "POST",
      body: JSON.stringify({ model: ID, tokens: [1, 99999] }),
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, "bad_request");
  });
});

for (const policy of [new FixedPolicy(4, 6), new FixedPolicy(0)]) {
  Deno.test(`routed: a slow edge mid-generation (${policy.name}) falls back to local, degraded`, async () => {
    const edge = await createEdgeApp({ models: [{ id: ID, model }] });
    const server = serveEdge(edge.fetch);
    let forwards = 0;
    // Split: the 4th frame stalls. Cloud: the stream's answer is held back past the timeout.
    const proxy = startFaultProxy(server.url, (req) => {
      const path = new URL(req.url).pathname;
      if (path.endsWith("/forward")) return forwards++ >= 3 ? { delayMs: 1500 } : "pass";
      if (path === "/v1/generate") return { delayMs: 1500 };
      return "pass";
    });
    try {
      const run = routedGenerate(device, SHORT, {
        ...base(proxy.url),
        policy,
        timeoutMs: 150,
        retries: 0,
      });
      const got = await Array.fromAsync(run);
      const log = run.decisions();
      assert.equal(log.length, 2);
      assert.equal(log[1].route, "local");
      assert.equal(log[1].degraded, true);
      assert.match(log[1].trigger ?? "", /^network/);
      assert.match(log[1].reason, /degraded/);
      const k = log[1].atToken;
      const ref = want(SHORT);
      assert.deepEqual(got.slice(0, k), ref.slice(0, k)); // what the edge answered is exact
      const context = [...SHORT, ...got.slice(0, k)];
      assert.deepEqual(got.slice(k), [...earlyExitGenerate(device, context, N - k)]);
      assert.equal(run.segments()[1].localTokens, got.length - k);
    } finally {
      await proxy.close();
      await server.close();
      edge.dispose();
    }
  });
}

Deno.test("routed: a link that slows down mid-generation moves the rest of the query to the cloud", async () => {
  await withEdge(async (url) => {
    let forwards = 0;
    // After a few fast round trips every request waits 120 ms more: one round trip per token
    // (a plain split) becomes slow, one stream (cloud) pays it once.
    const proxy = startFaultProxy(url, (req) => {
      const path = new URL(req.url).pathname;
      if (path.endsWith("/forward")) return forwards++ >= 4 ? { delayMs: 120 } : "pass";
      return forwards > 4 ? { delayMs: 120 } : "pass";
    });
    try {
      const opts = {
        ...base(proxy.url),
        maxTokens: 64,
        policy: new DefaultPolicy(),
        estimator: new NetworkEstimator(),
        device: { flopsPerSec: 1e9 },
        edgeState: { flopsPerSec: 1e9 },
      };
      // A session prepared at K = 4 (as an app opens one while the user types), so the split
      // does not pay its opening request.
      const prepared = await openRoutedSession(device, 4, opts);
      assert.equal(opts.estimator.samples, 1, "the prepared session's opening fed the estimator");
      const run = routedGenerate(device, SHORT, { ...opts, reroute: { everyTokens: 8 }, prepared });
      const got = await Array.fromAsync(run);
      assert.deepEqual(got, [...generate(full, SHORT, { maxTokens: 64 })]);
      const log = run.decisions();
      assert.equal(log[0].route, "split");
      assert.equal(log.length, 2, JSON.stringify(log.map((d) => [d.route, d.trigger])));
      assert.equal(log[1].route, "cloud");
      assert.equal(log[1].degraded, false);
      assert.match(log[1].trigger ?? "", /^reroute: the running route streams [\d.]+ tok\/s/);
      assert.ok(log[1].atToken > 4 && log[1].atToken < 64, `switched at ${log[1].atToken}`);
      const [split, cloud] = run.segments();
      assert.equal(split.tokens + cloud.tokens, got.length);
      assert.equal(cloud.route, "cloud");
      // Without re-routing the run stays split, one slow round trip a token.
      forwards = 0;
      const fresh = { ...opts, estimator: new NetworkEstimator() };
      const fixed = routedGenerate(device, SHORT, {
        ...fresh,
        reroute: false,
        prepared: await openRoutedSession(device, 4, fresh),
      });
      assert.deepEqual(await Array.fromAsync(fixed), got);
      assert.equal(fixed.decisions().length, 1);
      assert.equal(fixed.decisions()[0].route, "split");
      assert.throws(
        () => routedGenerate(device, SHORT, { ...opts, reroute: { everyTokens: 0 } }),
        /reroute.everyTokens must be a whole number/,
      );
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("routed: a prepared session spares the split's predicted TTFT its opening request", async () => {
  await withEdge(async (url) => {
    const prior = { rttMs: 40, upBytesPerSec: 1e6, downBytesPerSec: 4e6 };
    const opts = {
      ...base(url),
      maxTokens: 4,
      policy: new FixedPolicy(4),
      estimator: new NetworkEstimator({ prior }),
      estimate: false,
    };
    const cold = routedGenerate(device, SHORT, opts);
    await Array.fromAsync(cold);
    const prepared = await openRoutedSession(device, 4, opts);
    const warm = routedGenerate(device, SHORT, { ...opts, prepared });
    await Array.fromAsync(warm);
    const [c] = cold.decisions(), [w] = warm.decisions();
    // One request and its answer: at least the round trip.
    assert.ok(
      c.predicted.ttftMs - w.predicted.ttftMs >= prior.rttMs,
      `${c.predicted.ttftMs} vs ${w.predicted.ttftMs}`,
    );
    assert.equal(c.predicted.roundTrips, w.predicted.roundTrips + 1);
  });
});

/**
 * Behind a link that holds the forward requests `held` picks for 150 ms: warms the connection
 * and the estimator, runs one query at a fixed split with rows (the corrector sees the late
 * upload; same tokens), then `after` with the routed options, their TTFT corrector and a count
 * of the requests the link held so far.
 */
async function afterALateUpload(
  held: (req: Request) => boolean,
  prompt: number[],
  over: Partial<RoutedOptions>,
  after: (opts: RoutedOptions, ttft: TtftCorrector, holds: () => number) => Promise<void>,
): Promise<void> {
  let holds = 0; // requests the link held
  await withEdge(async (url) => {
    const proxy = startFaultProxy(
      url,
      (req) =>
        new URL(req.url).pathname.endsWith("/forward") && held(req) && ++holds
          ? { delayMs: 150 }
          : "pass",
    );
    try {
      const ttft = over.ttft ?? new TtftCorrector();
      const opts: RoutedOptions = {
        ...base(proxy.url),
        maxTokens: 8,
        policy: new DefaultPolicy({ minTokensPerSec: 1 }),
        estimator: new NetworkEstimator({ prior: { rttMs: 2 } }),
        edgeState: { flopsPerSec: 1e9 },
        ...over,
        ttft,
      };
      await Array.fromAsync(routedGenerate(device, prompt, { ...opts, ttft: undefined }));
      const fixed = routedGenerate(device, prompt, { ...opts, policy: new FixedPolicy(4) });
      assert.deepEqual(await Array.fromAsync(fixed), want(prompt).slice(0, 8));
      assert.equal(fixed.decisions()[0].prefill, undefined);
      assert.ok(fixed.metrics().ttftMs >= 150);
      assert.equal(ttft.samples, 1);
      await after(opts, ttft, () => holds);
    } finally {
      await proxy.close();
    }
  });
}

/**
 * `n` routed queries of `prompt` with `opts`, each with a session prepared at K = 4 (as an app
 * opens one while the user types, so no route pays an opening request): each gives the whole
 * model's tokens.
 */
async function* queries(prompt: number[], opts: RoutedOptions, n: number) {
  for (let q = 0; q < n; q++) {
    const prepared = await openRoutedSession(device, 4, opts);
    const run = routedGenerate(device, prompt, { ...opts, prepared });
    assert.deepEqual(await Array.fromAsync(run), want(prompt).slice(0, 8));
    yield run;
  }
}

Deno.test("routed: a TTFT corrector learns that prompt rows arrive late and moves later queries to token prefill", async () => {
  // A link that holds any large upload (the prompt's rows: 9 × 64 f32 values); the token-id
  // frame and the decode rows pass.
  const large = (req: Request) => Number(req.headers.get("content-length") ?? 0) > 1500;
  const wire = { decode: "f32" as const, prefill: "f32" as const };
  await afterALateUpload(
    large,
    SHORT,
    { wire, device: { flopsPerSec: 1e9 } },
    async (opts, ttft, holds) => {
      const held = holds();
      assert.ok((ttft.state.rows ?? 0) > 30, `rows corrected by ${ttft.state.rows} ms`);
      // From then on the router predicts rows late and sends the prompt as token ids.
      for await (const run of queries(SHORT, opts, 3)) {
        const [d] = run.decisions();
        assert.equal(d.route, "split");
        assert.equal(d.prefill, "tokens", d.reason);
        // Rows predicted with the correction (uncorrected they are ~15 ms on loopback).
        const rowsMs = Number(/prompt as token ids \(rows: TTFT (\d+) ms/.exec(d.reason)?.[1]);
        assert.ok(rowsMs > 35, d.reason);
        assert.equal(holds(), held, "no upload held since the fixed query's");
      }
      assert.equal(ttft.samples, 4);
      assert.ok(Math.abs(ttft.state.ids ?? 0) < 50, `ids corrected by ${ttft.state.ids} ms`);
    },
  );
});

Deno.test("routed: pipelined prompts learned late go as rows in one frame, keeping the split", async () => {
  // A link that holds streamed uploads (a pipelined prompt: no content-length), as a host
  // without TCP_NODELAY holds their last chunk; whole frames pass.
  const streamed = (req: Request) => {
    const h = !req.headers.has("content-length");
    if (h) {
      console.log(
        "HELD",
        performance.now().toFixed(0),
        req.method,
        new URL(req.url).pathname,
        [...req.headers.keys()].join(","),
      );
    }
    return h;
  };
  const wire = { decode: "f32" as const, prefill: "f32" as const, pipelineRows: 8 };
  // Loopback times are a few ms and move with the machine's load, so the limits are wide and
  // the corrector takes each sample whole: the 150 ms hold puts pipelined rows past the limit,
  // and one-frame rows stay inside it however busy the machine is.
  const policy = new DefaultPolicy({ minTokensPerSec: 1, ttftSlackMs: 100, rowPrefillMarginMs: 0 });
  const ttft = new TtftCorrector({ weight: 1 });
  await afterALateUpload(
    streamed,
    LONG,
    { wire, policy, ttft, device: { flopsPerSec: 1e10 } },
    async (opts, ttft, holds) => {
      const held = holds();
      assert.ok(
        (ttft.state.pipelined ?? 0) > 120,
        `pipelined corrected by ${ttft.state.pipelined}`,
      );
      assert.equal(ttft.state.rows, undefined);
      for await (const run of queries(LONG, opts, 2)) {
        const [d] = run.decisions();
        assert.equal(d.route, "split");
        assert.equal(d.prefill, "whole", d.reason);
        assert.equal(holds(), held, "no upload held since the fixed query's");
      }
      assert.equal(typeof ttft.state.rows, "number", "one-frame prompts are measured as rows");
    },
  );
});
