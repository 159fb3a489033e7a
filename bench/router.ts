/**
 * Router simulation bench: one workload, three network profiles (a loopback proxy that delays
 * and throttles real HTTP traffic to a real edge on loopback), and three strategies — all-cloud
 * (the edge's OpenAI route, streamed), a fixed split at layer 3, and the router (default
 * policy, calibrated here). Prints cloud FLOPs vs all-cloud, TTFT and total latency (p50/p95),
 * bytes, round trips per token and token agreement; writes bench/results/router.json, an SVG
 * plot bench/results/router.svg, and its section of bench/README.md.
 *
 * `deno task bench router [--quick]`
 *
 * @module
 */

import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { cutModel } from "../runtime/shard.ts";
import { digestModel } from "../runtime/digest.ts";
import { createSession } from "../runtime/session.ts";
import { generateSpeculative } from "../runtime/speculate_session.ts";
import { modelProfile, rowsFlops } from "../runtime/cost.ts";
import { estimatingFetch } from "../runtime/estimating_fetch.ts";
import {
  DEFAULT_THRESHOLDS,
  DefaultPolicy,
  NetworkEstimator,
  predictSplit,
} from "../runtime/router/mod.ts";
import type { Decision, Policy, RouterInput } from "../runtime/router/mod.ts";
import type { WireDtype } from "../runtime/wire.ts";
import { createEdgeApp } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { fmt, printTable, writeResults } from "./_results.ts";
import { type NetProfile, PROFILES, startProxy } from "./_netsim.ts";
import {
  agreement,
  calibrate,
  type CalibrationRow,
  type Job,
  wholeFlops,
  workload,
} from "./_router_workload.ts";
import { scatterSvg } from "./_svg.ts";
import { routerReadme } from "./_router_report.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const ID = "stories260K";
const DEVICE_LAYERS = 4; // the device holds embedding, layers [0, 4) and the head
const FIXED_SPLIT = 3;
const ROUTER_WIRE: WireDtype = "f32"; // int8 (68 bytes a row, not 256) measured 87.7% agreement over 96 tokens

/** One request's outcome. */
export interface Outcome {
  kind: string;
  reference: number[];
  route: string;
  split: number;
  tokens: number[];
  ttftMs: number;
  totalMs: number;
  edgeFlops: number;
  wholeFlops: number;
  frames: number;
  decodeTrips: number;
}

/** A strategy's run on one profile. */
export interface StrategyRun {
  profile: string;
  strategy: string;
  outcomes: Outcome[];
  bytesUp: number;
  bytesDown: number;
  requests: number;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : 0;
};

async function pool<T>(n: number, items: T[], fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

/** Throughput of an engine on a short prefill + decode, FLOP/s. */
function measureFlops(engine: RefEngine, L: number): number {
  const c = engine.config;
  const cache = engine.createCache();
  const t0 = performance.now();
  const prompt = Array.from({ length: 32 }, (_, i) => 10 + i);
  engine.forward(cache, engine.embed(prompt), 0, 0, L);
  for (let p = 32; p < 96; p++) engine.forward(cache, engine.embed([5]), p, 0, L);
  const ms = performance.now() - t0;
  return rowsFlops(c, L, 0, 96) / (ms / 1000);
}

export async function run(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
  const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
  const c = model.config;
  const L = c.nLayers;
  const full = new RefEngine(model);
  const device = new RefEngine(
    cutModel(model, { layers: [0, DEVICE_LAYERS], embed: true, head: true }),
  );
  const { modelDigest } = await digestModel(model);
  const maxTokens = quick ? 32 : 96;
  const jobs = workload(full, tok, {
    openings: quick ? 4 : 8,
    long: quick ? 2 : 4,
    longTokens: quick ? 200 : 320,
    maxTokens,
  });
  measureFlops(full, L); // warm up
  const flopsPerSec = measureFlops(full, L);

  // 1. Calibration, offline: draft and local thresholds from the workload itself.
  const calib: CalibrationRow[] = [];
  const plain = calibrate(full, jobs, DEVICE_LAYERS, 1.01, 1.01, maxTokens);
  calib.push(plain);
  for (const th of [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]) {
    calib.push(calibrate(full, jobs, DEVICE_LAYERS, th, 1.01, maxTokens));
    if (!quick) calib.push(calibrate(full, jobs, FIXED_SPLIT, th, 1.01, maxTokens));
  }
  for (const tau of [0.6, 0.8, 0.9, 0.95, 0.98, 0.99]) {
    calib.push(calibrate(full, jobs, DEVICE_LAYERS, 1.01, tau, maxTokens));
  }
  const tol = DEFAULT_THRESHOLDS.savingsTolerance;
  const draftRows = calib.filter((r) =>
    r.split === DEVICE_LAYERS && r.localTop1 > 1 && r.draftTop1 <= 1
  );
  const draftPick = draftRows.find((r) => r.cloudShare - plain.cloudShare <= tol) ?? plain;
  const localRows = calib.filter((r) => r.localTop1 <= 1);
  const localPick = localRows.find((r) => r.agreement >= 0.99);
  const thresholds = {
    draftTop1: draftPick.draftTop1 <= 1 ? draftPick.draftTop1 : 1.01,
    localTop1: localPick?.localTop1 ?? 1.01,
  };
  console.log("calibration (in process, K=%d unless noted):", DEVICE_LAYERS);
  printTable([
    ["K", "draftTop1", "localTop1", "tok/trip", "rows/tok", "cloud share", "agreement"],
    ...calib.map((
      r,
    ) => [
      r.split,
      r.draftTop1 > 1 ? "off" : r.draftTop1,
      r.localTop1 > 1 ? "off" : r.localTop1,
      r.tokensPerRoundTrip,
      r.rowsPerToken,
      `${(100 * r.cloudShare).toFixed(1)}%`,
      `${(100 * r.agreement).toFixed(1)}%`,
    ]),
  ]);
  console.log(
    `chosen: draftTop1 ${thresholds.draftTop1}, localTop1 ${
      thresholds.localTop1 > 1 ? "off" : thresholds.localTop1
    }`,
  );
  const policy = new DefaultPolicy(thresholds);
  const speculation = Array.from(
    { length: L + 1 },
    (_, k) =>
      k === DEVICE_LAYERS
        ? { tokensPerRoundTrip: draftPick.tokensPerRoundTrip, rowsPerToken: draftPick.rowsPerToken }
        : undefined,
  );

  // 2. The edge, on loopback; a proxy per profile and strategy.
  const edge = await createEdgeApp({ models: [{ id: ID, model, tokenizer: tok }] });
  const server = serveEdge(edge.fetch);
  const profile = modelProfile(c);
  const runs: StrategyRun[] = [];
  const decisions: {
    profile: string;
    kind: string;
    decision: Omit<Decision, "predicted" | "baseline">;
  }[] = [];
  const modelled: {
    profile: string;
    split: number;
    drafting: boolean;
    cloudShare: number;
    totalMs: number;
  }[] = [];
  let seed = 1;
  try {
    for (const net of Object.values(PROFILES)) {
      const concurrency = net.rttMs < 10 ? 1 : net.rttMs < 100 ? 2 : jobs.length;
      // The prior is what the platform reports about the link (the Network Information API's
      // rtt/downlink on the web); real requests then refine it.
      const estimator = new NetworkEstimator({
        prior: {
          rttMs: net.rttMs,
          upBytesPerSec: net.upBytesPerSec,
          downBytesPerSec: net.downBytesPerSec,
        },
      });
      const inputFor = (job: Job): RouterInput => ({
        model: profile,
        query: { promptTokens: job.prompt.length, maxTokens },
        device: {
          flopsPerSec,
          freeBytes: profile.baseBytes + DEVICE_LAYERS * profile.layerBytes,
          threads: 1,
          heldLayers: DEVICE_LAYERS,
        },
        network: estimator.state,
        edge: { available: true, flopsPerSec, load: 0, queueMs: 0, pricePerFlop: 1e-9 },
        wire: {
          bytesPerRow: ROUTER_WIRE === "int8" ? c.dim + 4 : 4 * c.dim,
          requestBytes: 100,
          replyBytesPerToken: 40,
        },
        speculation,
      });
      const strategies: [string, (job: Job, url: string) => Promise<Outcome>][] = [
        ["all-cloud", (job, url) => runCloud(job, url, maxTokens)],
        [`fixed split ${FIXED_SPLIT}`, (job, url) => runSplit(job, url, FIXED_SPLIT, "plain")],
        ["router", async (job, url) => {
          const d = policy.decide(inputFor(job));
          const { predicted: _p, baseline: _b, ...rest } = d;
          decisions.push({ profile: net.name, kind: job.kind, decision: rest });
          if (d.route === "cloud") {
            return { ...await runCloud(job, url, maxTokens), route: "cloud" };
          }
          return await runSplit(
            job,
            url,
            d.split,
            d.maxDraft > 0 ? policy : "plain",
            estimator,
            ROUTER_WIRE,
          );
        }],
      ];
      if (!quick) {
        for (let k = 1; k <= DEVICE_LAYERS; k++) {
          if (k !== FIXED_SPLIT) {
            strategies.push([`fixed split ${k}`, (job, url) => runSplit(job, url, k, "plain")]);
          }
        }
        strategies.push([
          `split ${DEVICE_LAYERS} + drafts`,
          (job, url) => runSplit(job, url, DEVICE_LAYERS, policy),
        ]);
      }
      // Warm the estimator the way a device would: a few small requests before the first query.
      {
        const proxy = startProxy(server.url, net, seed++);
        const f = estimatingFetch(estimator);
        for (let i = 0; i < 3; i++) await (await f(`${proxy.url}/healthz`)).text();
        await proxy.close();
      }
      for (const [name, fn] of strategies) {
        const proxy = startProxy(server.url, net, seed++);
        const outcomes: Outcome[] = [];
        await pool(concurrency, jobs, async (job) => void outcomes.push(await fn(job, proxy.url)));
        runs.push({
          profile: net.name,
          strategy: name,
          outcomes,
          bytesUp: proxy.bytesUp,
          bytesDown: proxy.bytesDown,
          requests: proxy.requests,
        });
        await proxy.close();
      }
      for (let k = 0; k <= DEVICE_LAYERS; k++) {
        for (const draft of k === DEVICE_LAYERS ? [false, true] : [false]) {
          const preds = jobs.map((j) =>
            predictSplit(
              {
                ...inputFor(j),
                network: {
                  ...estimator.state,
                  rttMs: net.rttMs,
                  upBytesPerSec: net.upBytesPerSec,
                  downBytesPerSec: net.downBytesPerSec,
                },
              },
              k,
              draft,
            )
          );
          const whole = jobs.reduce((a, j) => a + wholeFlops(c, j.prompt.length, maxTokens), 0);
          modelled.push({
            profile: net.name,
            split: k,
            drafting: draft,
            cloudShare: preds.reduce((a, p) => a + p.edgeFlops, 0) / whole,
            totalMs: pct(preds.map((p) => p.totalMs), 0.5),
          });
        }
      }
    }
  } finally {
    await server.close();
    edge.dispose();
  }

  async function runCloud(job: Job, url: string, max: number): Promise<Outcome> {
    const t0 = performance.now();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: ID,
        messages: [{ role: "user", content: job.text }],
        max_tokens: max,
        temperature: 0,
        stream: true,
      }),
    });
    let ttft = 0, text = "", buf = "";
    const dec = new TextDecoder();
    for await (const chunk of res.body!) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line.startsWith("data: {")) continue;
        const piece = JSON.parse(line.slice(6)).choices?.[0]?.delta?.content ?? "";
        if (piece && !ttft) ttft = performance.now() - t0;
        text += piece;
      }
    }
    const total = performance.now() - t0;
    // The edge runs the same greedy generate() as the reference: its text must match.
    const tokens =
      text === tok.decode([job.prompt[0], ...job.reference]) || text === tok.decode(job.reference)
        ? job.reference
        : [];
    const w = wholeFlops(c, job.prompt.length, job.reference.length);
    return {
      kind: job.kind,
      reference: job.reference,
      route: "cloud",
      split: 0,
      tokens,
      ttftMs: ttft,
      totalMs: total,
      edgeFlops: w,
      wholeFlops: w,
      frames: 1,
      decodeTrips: 0,
    };
  }

  async function runSplit(
    job: Job,
    url: string,
    K: number,
    p: Policy | "plain",
    est?: NetworkEstimator,
    wire: WireDtype = "f32",
  ): Promise<Outcome> {
    // The session is opened ahead of the query (as an app would when the user starts typing).
    const session = await createSession({
      engine: device,
      modelId: ID,
      modelDigest,
      split: K,
      edge: url,
      wire,
      fetch: est ? estimatingFetch(est) : undefined,
    });
    const r = generateSpeculative(session, device, job.prompt, { maxTokens, policy: p });
    const tokens = await Array.fromAsync(r);
    const m = r.metrics();
    await session.close();
    return {
      kind: job.kind,
      reference: job.reference,
      route: "split",
      split: K,
      tokens,
      ttftMs: m.ttftMs,
      totalMs: m.totalMs,
      edgeFlops: m.edgeFlops,
      wholeFlops: wholeFlops(c, job.prompt.length, job.reference.length),
      frames: m.roundTrips,
      decodeTrips: m.roundTrips - 1,
    };
  }

  // 3. Figures.
  const rows = runs.map(summarize);
  printTable([
    [
      "profile",
      "strategy",
      "cloud FLOPs",
      "saved",
      "TTFT p50",
      "TTFT p95",
      "total p50",
      "total p95",
      "KB up",
      "KB down",
      "trips/token",
      "tok/trip",
      "agreement",
      "routes",
    ],
    ...rows.map((
      s,
    ) => [
      s.profile,
      s.strategy,
      `${s.cloudPct.toFixed(1)}%`,
      `${(100 - s.cloudPct).toFixed(1)}%`,
      s.ttftP50,
      s.ttftP95,
      s.totalP50,
      s.totalP95,
      s.kbUp,
      s.kbDown,
      s.tripsPerToken,
      s.tokensPerTrip,
      `${s.agreementPct.toFixed(2)}%`,
      s.routes,
    ]),
  ]);
  const targets = Object.values(PROFILES).map((net) => {
    const router = rows.find((s) => s.profile === net.name && s.strategy === "router")!;
    const cloud = rows.find((s) => s.profile === net.name && s.strategy === "all-cloud")!;
    return {
      profile: net.name,
      saved: 100 - router.cloudPct,
      agreement: router.agreementPct,
      ttftRouter: router.ttftP50,
      ttftCloud: cloud.ttftP50,
      ttftRatio: router.ttftP50 / cloud.ttftP50,
      totalRatio: router.totalP50 / cloud.totalP50,
    };
  });
  for (const t of targets) {
    console.log(
      `${t.profile}: router saves ${
        t.saved.toFixed(1)
      }% cloud FLOPs (target 60%, aim 70%), agreement ${
        t.agreement.toFixed(2)
      }% (≥ 99%), TTFT p50 ${fmt(t.ttftRouter)} ms vs all-cloud ${fmt(t.ttftCloud)} ms (×${
        t.ttftRatio.toFixed(2)
      }), total p50 ×${t.totalRatio.toFixed(2)}`,
    );
  }
  const svg = scatterSvg({
    title: "Cloud-FLOP savings vs latency (stories260K, p50 per request)",
    note:
      `filled: measured strategies; hollow: cost model per split K (0 = all-cloud, "+d" = with drafts); ${maxTokens} tokens`,
    xLabel: "total latency per request, p50 (ms, log)",
    yLabel: "cloud FLOPs saved vs all-cloud (%)",
    series: Object.values(PROFILES).map((net: NetProfile) => ({
      name: net.name,
      points: [
        ...rows.filter((s) => s.profile === net.name).map((s) => ({
          x: s.totalP50,
          y: 100 - s.cloudPct,
          label: s.strategy,
        })),
        ...modelled.filter((m) => m.profile === net.name).map((m) => ({
          x: m.totalMs,
          y: 100 * (1 - m.cloudShare),
          label: `K=${m.split}${m.drafting ? "+d" : ""}`,
          hollow: true,
        })),
      ],
    })),
  });
  await Deno.writeTextFile(
    new URL(`./results/router${quick ? "-quick" : ""}.svg`, import.meta.url),
    svg,
  );
  const path = await writeResults(quick ? "router-quick" : "router", {
    quick,
    maxTokens,
    jobs: jobs.map((j) => ({
      kind: j.kind,
      promptTokens: j.prompt.length,
      referenceTokens: j.reference.length,
    })),
    flopsPerSec,
    deviceLayers: DEVICE_LAYERS,
    profiles: PROFILES,
    calibration: calib,
    thresholds,
    strategies: rows,
    targets,
    modelled,
    decisions,
  });
  console.log(`wrote ${path} and router${quick ? "-quick" : ""}.svg`);
  if (!quick) {
    await routerReadme({
      rows,
      targets,
      calib,
      thresholds,
      maxTokens,
      jobs: jobs.length,
      flopsPerSec,
    });
  }
}

/** A strategy's figures on one profile. */
export interface Summary {
  profile: string;
  strategy: string;
  cloudPct: number;
  ttftP50: number;
  ttftP95: number;
  totalP50: number;
  totalP95: number;
  kbUp: number;
  kbDown: number;
  tripsPerToken: number;
  tokensPerTrip: number;
  agreementPct: number;
  routes: string;
}

/** Aggregates one strategy run. */
export function summarize(r: StrategyRun): Summary {
  const o = r.outcomes;
  let same = 0, of = 0, edge = 0, whole = 0, tokens = 0, frames = 0, trips = 0, decoded = 0;
  const routes = new Map<string, number>();
  for (const x of o) {
    const a = agreement(x.tokens, x.reference);
    same += a.same;
    of += a.of;
    edge += x.edgeFlops;
    whole += x.wholeFlops;
    tokens += x.tokens.length;
    frames += x.frames;
    trips += x.decodeTrips;
    decoded += Math.max(0, x.tokens.length - 1);
    const key = x.route === "cloud" ? "cloud" : `K${x.split}`;
    routes.set(key, (routes.get(key) ?? 0) + 1);
  }
  return {
    profile: r.profile,
    strategy: r.strategy,
    cloudPct: 100 * edge / whole,
    ttftP50: pct(o.map((x) => x.ttftMs), 0.5),
    ttftP95: pct(o.map((x) => x.ttftMs), 0.95),
    totalP50: pct(o.map((x) => x.totalMs), 0.5),
    totalP95: pct(o.map((x) => x.totalMs), 0.95),
    kbUp: r.bytesUp / 1024,
    kbDown: r.bytesDown / 1024,
    tripsPerToken: frames / Math.max(1, tokens),
    tokensPerTrip: trips > 0 ? decoded / trips : 0,
    agreementPct: of > 0 ? 100 * same / of : 100,
    routes: [...routes].map(([k, v]) => `${k}×${v}`).join(" "),
  };
}
