// The edge's load and speed as the router reads them: the edge counts whole-model generations
// (chat and token-id routes) in its metrics; EdgeMonitor derives load and FLOP/s from two
// samples of `/metrics`, survives restarts and failures, and routedGenerate decides with it.
import assert from "node:assert/strict";
import { rowsFlops } from "../runtime/cost.ts";
import { EdgeMonitor } from "../runtime/edge_monitor.ts";
import { headFlops } from "../runtime/model.ts";
import { parsePrometheus } from "../runtime/router/prometheus.ts";
import { FixedPolicy } from "../runtime/router/policy.ts";
import { routedGenerate } from "../runtime/routed.ts";
import { createSession } from "../runtime/session.ts";
import { createEdgeApp } from "../edge/app.ts";
import { withEdge } from "./_edge.ts";
import { device, EDGE, ID, model, modelDigest, PROMPTS, tok } from "./_stories.ts";

const c = model.config;

/** Metric values summed by name (and label filter). */
function sum(text: string, name: string, labels: Record<string, string> = {}): number {
  return parsePrometheus(text)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

Deno.test("edge metrics count whole-model generations: FLOPs, tokens, compute time, per route", async () => {
  const edge = await createEdgeApp({ models: [{ id: ID, model, tokenizer: tok }] });
  try {
    const prompt = PROMPTS[0];
    const gen = await edge.app.request("/v1/generate", {
      method: "POST",
      body: JSON.stringify({ model: ID, tokens: prompt, max_tokens: 20, stop_at_eos: false }),
    });
    const lines = (await gen.text()).trim().split("\n").map((l) => JSON.parse(l));
    const produced = lines.filter((l) => l.token !== undefined).length;
    assert.equal(produced, 20);
    const chat = await edge.app.request("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model: ID,
        messages: [{ role: "user", content: "Tom had a red ball" }],
        max_tokens: 10,
        temperature: 0,
      }),
    });
    const usage = (await chat.json()).usage;
    const text = await (await edge.app.request("/metrics")).text();
    assert.equal(sum(text, "tandem_edge_generations_total", { route: "generate" }), 1);
    assert.equal(sum(text, "tandem_edge_generations_total", { route: "chat" }), 1);
    const whole = (n: number, k: number) =>
      rowsFlops(c, c.nLayers, 0, n + k - 1) + k * headFlops(c);
    assert.equal(
      sum(text, "tandem_edge_flops_total", { split: "0" }),
      whole(prompt.length, 20) + whole(usage.prompt_tokens, usage.completion_tokens),
    );
    assert.equal(
      sum(text, "tandem_edge_tokens_total", { split: "0" }),
      20 + usage.completion_tokens,
    );
    assert.ok(sum(text, "tandem_edge_compute_seconds_total") > 0);
  } finally {
    edge.dispose();
  }
});

/** Prometheus text with the two counters the monitor reads. */
const metricsText = (seconds: number, flops: number) =>
  `# TYPE tandem_edge_compute_seconds_total counter
tandem_edge_compute_seconds_total{model="a"} ${seconds / 2}
tandem_edge_compute_seconds_total{model="b"} ${seconds / 2}
# TYPE tandem_edge_flops_total counter
tandem_edge_flops_total{model="a",split="2"} ${flops}
`;

Deno.test("EdgeMonitor: load and FLOP/s from two samples; restarts, failures and the interval", async () => {
  let clock = 0;
  let answer: () => Response = () => new Response(metricsText(10, 1e9));
  const seen: string[] = [];
  const monitor = new EdgeMonitor("http://edge.test/", {
    apiKey: "k".repeat(20),
    now: () => clock,
    fetch: (input, init) => {
      seen.push(`${input} ${new Headers(init?.headers).get("authorization")}`);
      return Promise.resolve(answer());
    },
  });
  assert.deepEqual(await monitor.refresh(), {}, "one sample says nothing");
  assert.deepEqual(seen, [`http://edge.test/metrics Bearer ${"k".repeat(20)}`]);
  clock = 2000;
  answer = () => new Response(metricsText(11, 3e9));
  assert.deepEqual(await monitor.refresh(), { flopsPerSec: 2e9, load: 0.5 });
  clock = 2500; // within the interval: no read
  assert.deepEqual(await monitor.refresh(), { flopsPerSec: 2e9, load: 0.5 });
  assert.equal(seen.length, 2);
  // A restarted edge (counters went back): a new baseline, the state stands.
  clock = 4000;
  answer = () => new Response(metricsText(0.5, 1e8));
  assert.deepEqual(await monitor.refresh(), { flopsPerSec: 2e9, load: 0.5 });
  // Busy beyond the clip; then idle for a second: load 0.
  clock = 5000;
  answer = () => new Response(metricsText(2.5, 4.1e9));
  assert.deepEqual(await monitor.refresh(), { flopsPerSec: 2e9, load: 0.95 });
  clock = 7000;
  assert.deepEqual(await monitor.refresh(), { flopsPerSec: 2e9, load: 0 });
  // Failures never throw: the state stands and the error says why.
  clock = 9000;
  answer = () => new Response("no", { status: 401 });
  assert.deepEqual(await monitor.refresh(), { flopsPerSec: 2e9, load: 0 });
  assert.match(monitor.error!, /Cannot read the edge's metrics: the edge answered 401/);
  clock = 11000;
  answer = () => {
    throw new TypeError("connection refused");
  };
  await monitor.refresh();
  assert.match(monitor.error!, /connection refused/);
});

Deno.test("EdgeMonitor on a real edge: the measured FLOP/s is the edge's own", async () => {
  const edge = await createEdgeApp(EDGE);
  let clock = 0;
  const monitor = new EdgeMonitor("http://edge.test", {
    now: () => clock,
    fetch: (input, init) => Promise.resolve(edge.fetch(new Request(String(input), init))),
  });
  try {
    await monitor.refresh();
    for (let i = 0; i < 3; i++) {
      await (await edge.app.request("/v1/generate", {
        method: "POST",
        body: JSON.stringify({ model: ID, tokens: PROMPTS[1], max_tokens: 40, stop_at_eos: false }),
      })).text();
    }
    const text = await (await edge.app.request("/metrics")).text();
    clock = 10_000;
    const state = await monitor.refresh();
    const flops = sum(text, "tandem_edge_flops_total");
    const seconds = sum(text, "tandem_edge_compute_seconds_total");
    assert.ok(Math.abs(state.flopsPerSec! - flops / seconds) / (flops / seconds) < 1e-9);
    assert.ok(state.load! > 0 && state.load! < 0.95, `load ${state.load}`);
  } finally {
    edge.dispose();
  }
});

Deno.test("an edge's advertised price reaches the monitor; a bad price is refused", async () => {
  const edge = await createEdgeApp({ ...EDGE, pricePerFlop: 2e-12 });
  try {
    const text = await (await edge.app.request("/metrics")).text();
    assert.equal(sum(text, "tandem_edge_price_per_flop"), 2e-12);
    const monitor = new EdgeMonitor("http://edge.test", {
      fetch: (input, init) => Promise.resolve(edge.fetch(new Request(String(input), init))),
    });
    assert.deepEqual(await monitor.refresh(), { pricePerFlop: 2e-12 }, "one sample suffices");
  } finally {
    edge.dispose();
  }
  await assert.rejects(
    () => createEdgeApp({ ...EDGE, pricePerFlop: -1 }),
    /pricePerFlop must be a finite number ≥ 0/,
  );
});

Deno.test("routedGenerate decides with the monitored edge: a loaded edge is predicted slower", async () => {
  await withEdge(EDGE, async (url) => {
    const busy = new EdgeMonitor(url, { fetch: () => Promise.resolve(new Response("")) });
    busy.state = { flopsPerSec: 1e7, load: 0.9 }; // as two samples would have said
    const run = (edgeMonitor?: EdgeMonitor) =>
      routedGenerate(device(4), PROMPTS[0], {
        edge: url,
        modelId: ID,
        modelDigest,
        policy: new FixedPolicy(0),
        edgeState: { flopsPerSec: 1e7, load: 0 },
        edgeMonitor,
        maxTokens: 8,
      });
    const idle = run();
    const loaded = run(busy);
    assert.deepEqual(await Array.fromAsync(loaded), await Array.fromAsync(idle));
    const [a] = idle.decisions(), [b] = loaded.decisions();
    assert.ok(
      b.predicted.totalMs > 5 * a.predicted.totalMs,
      `${b.predicted.totalMs} vs ${a.predicted.totalMs}`,
    );
  });
});

Deno.test("forward answers carry the edge's compute time (server-timing) for the network estimator", async () => {
  await withEdge(EDGE, async (url) => {
    const timings: string[] = [];
    const spy: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (String(input).endsWith("/forward")) timings.push(res.headers.get("server-timing") ?? "");
      return res;
    };
    const session = await createSession({
      engine: device(2),
      modelId: ID,
      modelDigest,
      split: 2,
      edge: url,
      fetch: spy,
    });
    await Array.fromAsync(session.generate(PROMPTS[0], { maxTokens: 3 }));
    await session.close();
    assert.ok(timings.length >= 3, `${timings.length} frames`);
    for (const t of timings) assert.match(t, /^edge;dur=\d+\.\d+$/);
  });
});
