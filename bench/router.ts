/**
 * Router simulation bench: one workload, three network profiles (a loopback proxy that delays
 * and throttles real HTTP traffic to a real edge on loopback), two compute variants and the
 * strategies — all-cloud (the edge's OpenAI route, streamed token by token), a fixed split at
 * layer 3, the router (`routedGenerate` with the default policy, calibrated here), and split 4
 * with stop-and-wait drafts (full run) and with draft streaming (wire 1.1). Last, how Deno's
 * keep-alive bug meets draft streaming's one request per row (`_conn_close.ts`).
 *
 * Variants: `unscaled` — stories260K computes in microseconds on both sides (what the tiny
 * model really costs; all-cloud looks instant); `cloud-class` — compute paced to the measured
 * SmolLM2-135M-shaped engine and boundary rows counted at its width (`_pace.ts`).
 *
 * Prints cloud FLOPs vs all-cloud, TTFT and total latency (p50/p95), tokens/s, bytes, round
 * trips per token and token agreement; writes bench/results/router.json, router.svg and its
 * section of bench/README.md.
 *
 * `deno task bench router [--quick]`
 *
 * @module
 */

import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { WasmEngine } from "../runtime/wasm_engine.ts";
import { cutModel } from "../runtime/shard.ts";
import { fitExitAdapter } from "../runtime/exit_adapter.ts";
import { digestModel } from "../runtime/digest.ts";
import { generationFlops, modelProfile, rowsFlops } from "../runtime/cost.ts";
import { routerInputFor } from "../runtime/router_input.ts";
import type { RoutedOptions } from "../runtime/routed.ts";
import {
  DEFAULT_THRESHOLDS,
  DefaultPolicy,
  FixedPolicy,
  NetworkEstimator,
  predictSplit,
  predictStreamed,
  TtftCorrector,
} from "../runtime/router/mod.ts";
import type { Policy, SpeculationProfile, StreamProfile } from "../runtime/router/mod.ts";
import type { Engine } from "../runtime/engine.ts";
import type { WireDtype } from "../runtime/wire.ts";
import { printTable, writeResults } from "./_results.ts";
import { PROFILES } from "./_netsim.ts";
import { RemoteEdge } from "./_remote_edge.ts";
import {
  calibrate,
  type CalibrationRow,
  earlyExitAgreement,
  type Job,
  workload,
} from "./_router_workload.ts";
import { type WireAgreement, wireAgreement } from "./_router_wire.ts";
import {
  measuredPace,
  PacedEngine,
  pacedFetch,
  pacedProfile,
  type PaceSpec,
  scaledEstimatingFetch,
} from "./_pace.ts";
import { type Outcome, runCloud, runRouted } from "./_router_runs.ts";
import { routerFigures, type RouterRun, type StrategyRun } from "./_router_figures.ts";
import { measureConnectionClose, streamFrameBytes } from "./_conn_close.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const ID = "stories260K";
const DEVICE_LAYERS = 4; // the device holds embedding, layers [0, 4) and the head
/** How the device's exit adapter is fitted (runtime/exit_adapter.ts). */
const EXIT_FIT = { count: 32, length: 256, epochs: 4, candidates: 64 };
const FIXED_SPLIT = 3;
const PIPELINE_ROWS = 16;
/** Draft streaming: most rows in flight (≤ the edge's 32 held per session). */
const STREAM_WINDOW = 16;
/** Skimming speed (words/min; Rayner et al. 2016: ~700 with comprehension dropping). */
const SKIM_WPM = 700;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/**
 * A paced device's row time, slept against a running deadline: rows computed back to back
 * keep the simulated pace however late each timer fires (an idle device starts afresh).
 */
function rowClock(dev: PacedEngine): () => Promise<void> {
  let due = 0;
  return async () => {
    const now = performance.now();
    due = Math.max(due, now) + dev.takeDebt();
    await sleep(due - now);
  };
}

async function pool<T>(n: number, items: T[], fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

/** Throughput of an engine on a short prefill + decode, FLOP/s. */
function measureFlops(engine: Engine, L: number): number {
  const c = engine.config;
  const cache = engine.createCache();
  const t0 = performance.now();
  engine.forward(cache, engine.embed(Array.from({ length: 32 }, (_, i) => 10 + i)), 0, 0, L);
  for (let p = 32; p < 96; p++) engine.forward(cache, engine.embed([5]), p, 0, L);
  return rowsFlops(c, L, 0, 96) / ((performance.now() - t0) / 1000);
}

/**
 * A policy that sees the simulated model class: boundary rows at its width, and a layer's
 * cost independent of the context, as `_pace.ts` paces it (stories260K's own attention share
 * at dim 64 would double a layer's FLOPs at 400 positions; the paced time does not grow).
 */
function scaledPolicy(inner: DefaultPolicy, scale: number): Policy {
  return {
    name: inner.name,
    decide: (input) =>
      inner.decide({
        ...input,
        model: pacedProfile(input.model),
        wire: {
          ...input.wire,
          bytesPerRow: input.wire.bytesPerRow * scale,
          prefillBytesPerRow: (input.wire.prefillBytesPerRow ?? input.wire.bytesPerRow) * scale,
        },
      }),
    step: (c, d) => inner.step(c, d),
    stepFor: (d) => inner.stepFor(d),
  };
}

export async function run(args: string[]): Promise<void> {
  const t0 = performance.now();
  const quick = args.includes("--quick");
  const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
  const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
  const c = model.config;
  const L = c.nLayers;
  const full = new RefEngine(model);
  // The device runs the wasm engine (f32, one thread), as the edge does: the unscaled variant
  // compares like with like, and in the cloud-class one the real compute under the simulated
  // pace stays small.
  const device = await WasmEngine.create(
    cutModel(model, { layers: [0, DEVICE_LAYERS], embed: true, head: true }),
    { quant: "f32", threads: 1 },
  );
  const modelDigest = (await digestModel(model)).modelDigest!;
  const maxTokens = quick ? 16 : 96;
  const jobs = workload(full, tok, {
    openings: quick ? 4 : 8,
    long: quick ? 2 : 4,
    longTokens: quick ? 200 : 320,
    maxTokens,
  });
  measureFlops(full, L); // warm up
  const flopsPerSec = measureFlops(full, L);
  // Both sides run the wasm engine (f32, one thread; the edge in bench/_edge_worker.ts).
  // The offline calibration runs on it too (the reference engine is ~10× slower); its greedy
  // tokens are checked against the workload's reference ones below.
  const wasm = await WasmEngine.create(model, { quant: "f32", threads: 1 });
  measureFlops(wasm, L);
  const edgeFlopsPerSec = measureFlops(wasm, L);

  console.error(`workload: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // 1. Calibration, offline. The device's exit adapter (fitted on the model's own sampled
  // text, not on the workload), then drafting variants (threshold × length) at its depth.
  const fitted = fitExitAdapter(model, DEVICE_LAYERS, quick ? { count: 8, epochs: 3 } : EXIT_FIT);
  const exitAdapter = fitted.adapter;
  const calib: CalibrationRow[] = [];
  const plain = calibrate(wasm, jobs, DEVICE_LAYERS, 1.01, 1.01, maxTokens);
  calib.push(plain);
  if (plain.agreement < 1) {
    throw new Error("the wasm engine's split tokens differ from the reference's");
  }
  for (const th of quick ? [0.5] : [0.2, 0.3, 0.5, 0.7]) {
    for (const md of quick ? [4] : [2, 4, 6, 10]) {
      calib.push(calibrate(wasm, jobs, DEVICE_LAYERS, th, 1.01, maxTokens, md, exitAdapter));
    }
  }
  for (const tau of quick ? [0.99] : [0.8, 0.9, 0.95, 0.99]) {
    calib.push(calibrate(wasm, jobs, DEVICE_LAYERS, 1.01, tau, maxTokens, 6, exitAdapter));
  }
  const tol = DEFAULT_THRESHOLDS.savingsTolerance;
  const draftRows = calib.filter((r) => r.localTop1 > 1 && r.draftTop1 <= 1);
  const withinTol = draftRows.filter((r) => r.cloudShare - plain.cloudShare <= tol);
  const draftPick = withinTol.sort((a, b) => b.tokensPerRoundTrip - a.tokensPerRoundTrip)[0] ??
    plain;
  const localPick = calib.filter((r) => r.localTop1 <= 1).find((r) => r.agreement >= 0.99);
  // Wire choices: agreement with all-cloud per prompt/decode dtype (quick: the two candidates).
  const wirePairs: [WireDtype, WireDtype][] = quick
    ? [["f32", "f32"], ["f16", "f32"]]
    : [["f32", "f32"], ["f16", "f32"], ["int8", "f32"], ["f16", "f16"], ["int8", "int8"]];
  const wires: WireAgreement[] = wirePairs.map(([p, d]) =>
    wireAgreement(wasm, jobs, DEVICE_LAYERS, p, d, maxTokens)
  );
  // Prompts go pipelined, so only dtypes that stream qualify (int8's scales precede its rows):
  // the cheapest of f16/f32 whose agreement holds.
  const cheapest = (["f16", "f32"] as WireDtype[]).find((p) => {
    const w = wires.find((x) => x.prefill === p && x.decode === "f32")!;
    return w.free >= 0.99 && w.forced >= 0.99;
  })!;
  // The reading-speed floor: skimming speed × this tokenizer's tokens per word.
  const words = jobs.reduce((a, j) => a + tok.decode(j.reference).split(/\s+/).length, 0);
  const tokensPerWord = jobs.reduce((a, j) => a + j.reference.length, 0) / words;
  const floor = SKIM_WPM / 60 * tokensPerWord;
  const thresholds = {
    draftTop1: draftPick.draftTop1 <= 1 ? draftPick.draftTop1 : 1.01,
    maxDraft: draftPick.maxDraft,
    localTop1: localPick?.localTop1 ?? 1.01,
    minTokensPerSec: Math.round(floor * 10) / 10,
  };
  const spec = (r: CalibrationRow): SpeculationProfile => ({
    tokensPerRoundTrip: r.tokensPerRoundTrip,
    rowsPerToken: r.rowsPerToken,
    draftTop1: r.draftTop1,
    maxDraft: r.maxDraft,
  });
  const speculation = Array.from(
    { length: L + 1 },
    (_, k) => k === DEVICE_LAYERS ? spec(draftPick) : undefined,
  );
  const draftVariants = Array.from(
    { length: L + 1 },
    (_, k) => k === DEVICE_LAYERS ? draftRows.map(spec) : undefined,
  );
  // Draft streaming: its mismatch rate is the early-exit head's disagreement with the model.
  const plainAcceptance = earlyExitAgreement(wasm, jobs, DEVICE_LAYERS);
  const acceptance = earlyExitAgreement(wasm, jobs, DEVICE_LAYERS, exitAdapter);
  wasm.dispose();
  const streamProfile: StreamProfile = { acceptance, maxInFlight: STREAM_WINDOW };
  const streaming = Array.from(
    { length: L + 1 },
    (_, k) => k === DEVICE_LAYERS ? streamProfile : undefined,
  );
  console.log("calibration (in process, K=%d):", DEVICE_LAYERS);
  printTable([
    ["draftTop1", "maxDraft", "localTop1", "tok/trip", "rows/tok", "cloud share", "agreement"],
    ...calib.map((r) => [
      r.draftTop1 > 1 ? "off" : r.draftTop1,
      r.draftTop1 > 1 ? "" : r.maxDraft,
      r.localTop1 > 1 ? "off" : r.localTop1,
      r.tokensPerRoundTrip,
      r.rowsPerToken,
      `${(100 * r.cloudShare).toFixed(1)}%`,
      `${(100 * r.agreement).toFixed(1)}%`,
    ]),
  ]);
  printTable([
    ["prompt wire", "decode wire", "free-running", "teacher-forced"],
    ...wires.map((w) => [
      w.prefill,
      w.decode,
      `${(100 * w.free).toFixed(2)}%`,
      `${(100 * w.forced).toFixed(2)}%`,
    ]),
  ]);
  console.log(
    `chosen: draftTop1 ${thresholds.draftTop1} × ${thresholds.maxDraft}, localTop1 ${
      thresholds.localTop1 > 1 ? "off" : thresholds.localTop1
    }, prompt wire ${cheapest}, early-exit agreement ${
      (100 * acceptance).toFixed(1)
    }% with the exit adapter (${
      (100 * plainAcceptance).toFixed(1)
    }% without; draft streaming), floor ${thresholds.minTokensPerSec} tok/s (${
      tokensPerWord.toFixed(2)
    } tokens/word × ${SKIM_WPM} words/min)`,
  );
  const policy = new DefaultPolicy(thresholds);
  console.error(`calibration: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // 2. Per compute variant: an edge on loopback (paced or not), a proxy per profile/strategy.
  const pace = await measuredPace(c.dim);
  // --quick: the variant the targets are judged on, and the three strategies (all-cloud, a
  // fixed split, the router) only, so it stays under a minute.
  const variants: { name: string; pace?: PaceSpec }[] = quick
    ? [{ name: "cloud-class", pace }]
    : [{ name: "unscaled" }, { name: "cloud-class", pace }];
  // The edge and the network proxies run in their own thread (bench/_edge_worker.ts), as on
  // other machines: the device's compute here does not hold back their timers.
  const far = new RemoteEdge();
  const profile = modelProfile(c);
  const runs: StrategyRun[] = [];
  const modelled: RouterRun["modelled"] = [];
  let seed = 1;
  try {
    for (const variant of variants) {
      const p = variant.pace;
      const scale = p ? p.rowBytesScale : 1;
      const server = await far.serve(DIR, ID, p);
      // Each request gets its own paced device (concurrent requests stand for separate devices).
      const newDevice = (): Engine => (p ? new PacedEngine(device, p) : device);
      // The cost model's rates: measured here, or the paced model class's (the pace charges
      // layers only: the head is not part of a paced token's time).
      const tokenFlops = L * profile.layerFlops(64);
      const rate = p ? tokenFlops / (p.decodeMs / 1000) : edgeFlopsPerSec;
      const edgeRate = rate;
      // Prompt rows batch (one read of the weights per pass): the paced class's prefill rate.
      const prefillRate = p ? tokenFlops / (p.prefillMs / 1000) : undefined;
      const routed = p ? scaledPolicy(policy, scale) : policy;
      try {
        for (const net of Object.values(PROFILES)) {
          const concurrency = net.rttMs < 10 ? 1 : net.rttMs < 100 ? 2 : jobs.length;
          // The prior is what the platform reports about the link (the Network Information
          // API's rtt/downlink on the web); real requests then refine it.
          const estimator = new NetworkEstimator({
            prior: {
              rttMs: net.rttMs,
              upBytesPerSec: net.upBytesPerSec,
              downBytesPerSec: net.downBytesPerSec,
            },
          });
          const observed = scaledEstimatingFetch(estimator, globalThis.fetch, scale);
          const fetchFor = (dev: Engine) =>
            dev instanceof PacedEngine ? pacedFetch(dev, observed) : observed;
          const opts = (
            url: string,
            pol: Policy,
            wire: RoutedOptions["wire"],
            dev: Engine = device,
          ): RoutedOptions => ({
            edge: url,
            modelId: ID,
            modelDigest,
            policy: pol,
            estimator,
            estimate: false,
            fetch: fetchFor(dev),
            device: {
              flopsPerSec: rate,
              prefillFlopsPerSec: prefillRate,
              heldLayers: DEVICE_LAYERS,
            },
            edgeState: { flopsPerSec: edgeRate, prefillFlopsPerSec: prefillRate },
            wire,
            speculation,
            draftVariants,
            streaming,
            exitAdapters: [exitAdapter],
            // A paced device computes a row by sleeping its simulated time before sending it.
            stream: dev instanceof PacedEngine ? { betweenRows: rowClock(dev) } : undefined,
            maxTokens,
            timeoutMs: 60_000,
          });
          const routerWire = {
            decode: "f32" as const,
            prefill: cheapest,
            pipelineRows: PIPELINE_ROWS,
          };
          const routedRun = (
            job: Job,
            url: string,
            pol: Policy,
            wire: RoutedOptions["wire"],
            k: number,
            ttft?: TtftCorrector,
          ) => {
            const dev = newDevice();
            return runRouted(job, dev, { ...opts(url, pol, wire, dev), ttft }, k, c);
          };
          // The router learns its TTFT error from its own queries (the fixed strategies run
          // without one: theirs would teach it about routes it does not take).
          const ttft = new TtftCorrector();
          const strategies: [string, (job: Job, url: string) => Promise<Outcome>][] = [
            ["all-cloud", (job, url) => runCloud(job, url, maxTokens, ID, tok, c)],
            [
              `fixed split ${FIXED_SPLIT}`,
              (job, url) => routedRun(job, url, new FixedPolicy(FIXED_SPLIT), {}, FIXED_SPLIT),
            ],
            [
              "router",
              (job, url) => routedRun(job, url, routed, routerWire, DEVICE_LAYERS, ttft),
            ],
          ];
          if (!quick) {
            strategies.push([
              `split ${DEVICE_LAYERS} + drafts`,
              (job, url) =>
                routedRun(job, url, new FixedPolicy(DEVICE_LAYERS, 6), {}, DEVICE_LAYERS),
            ]);
          }
          if (!quick) {
            strategies.push([
              `split ${DEVICE_LAYERS} + streaming`,
              (job, url) =>
                routedRun(
                  job,
                  url,
                  new FixedPolicy(DEVICE_LAYERS, 0, streamProfile),
                  routerWire,
                  DEVICE_LAYERS,
                ),
            ]);
          }
          { // Warm the estimator as a device would: a few small requests before the first query.
            const proxy = await far.proxy(server.url, net, seed++, scale);
            for (let i = 0; i < 3; i++) await (await observed(`${proxy.url}/healthz`)).text();
            await proxy.close();
          }
          for (const [name, fn] of strategies) {
            const started = performance.now();
            const proxy = await far.proxy(server.url, net, seed++, scale);
            const outcomes: Outcome[] = [];
            await pool(
              concurrency,
              jobs,
              async (job) => void outcomes.push(await fn(job, proxy.url)),
            );
            const counts = await proxy.close();
            console.error(
              `${variant.name} ${net.name} ${name}: ${
                ((performance.now() - started) / 1000).toFixed(1)
              } s`,
            );
            runs.push({
              variant: variant.name,
              profile: net.name,
              strategy: name,
              outcomes,
              ...counts,
            });
          }
          const whole = jobs.reduce(
            (a, j) => a + generationFlops(c, j.prompt.length, maxTokens),
            0,
          );
          for (let k = 0; k <= DEVICE_LAYERS; k++) {
            const modes: (boolean | "stream")[] = k === DEVICE_LAYERS ? [false, true, "stream"] : [
              false,
            ];
            for (const draft of modes) {
              const preds = jobs.map((j) => {
                const input = routerInputFor(
                  device,
                  {
                    ...estimator.state,
                    rttMs: net.rttMs,
                    upBytesPerSec: net.upBytesPerSec,
                    downBytesPerSec: net.downBytesPerSec,
                  },
                  { promptTokens: j.prompt.length, maxTokens },
                  opts("", routed, routerWire),
                );
                input.wire.bytesPerRow *= scale;
                input.wire.prefillBytesPerRow = (input.wire.prefillBytesPerRow ?? 0) * scale;
                if (p) input.model = pacedProfile(input.model);
                return draft === "stream"
                  ? predictStreamed(input, k, streamProfile)
                  : predictSplit(input, k, draft);
              });
              modelled.push({
                variant: variant.name,
                profile: net.name,
                split: k,
                drafting: draft === true,
                streamed: draft === "stream",
                tokensPerSec: preds.map((x) => x.tokensPerSec).sort((a, b) => a - b)[
                  preds.length >> 1
                ],
                cloudShare: preds.reduce((a, x) => a + x.edgeFlops, 0) / whole,
                totalMs: preds.map((x) => x.totalMs).sort((a, b) => a - b)[preds.length >> 1],
              });
            }
          }
        }
      } finally {
        await server.close();
      }
    }
  } finally {
    far.terminate();
  }

  // 3. Deno's keep-alive bug (bodies over ~500 B get `Connection: close`): measured per row
  // width, and what an extra round trip or two per streamed row would do to cloud-class 4G.
  const connResults = await measureConnectionClose([
    { label: "stories260K row, f16 (64 values)", bytes: streamFrameBytes(c.dim, "f16") },
    { label: "stories260K row, f32 (64 values)", bytes: streamFrameBytes(c.dim) },
    { label: "cloud-class row, f32 (576 values)", bytes: streamFrameBytes(576) },
  ]);
  const g4 = PROFILES.good4g;
  const rates = [0, 1, 2].map((extraRtts) => {
    const tps = jobs.map((j) => {
      const input = routerInputFor(
        device,
        {
          rttMs: g4.rttMs * (1 + extraRtts),
          rttVarMs: 0,
          upBytesPerSec: g4.upBytesPerSec,
          downBytesPerSec: g4.downBytesPerSec,
        },
        { promptTokens: j.prompt.length, maxTokens },
        {
          device: {
            flopsPerSec: L * profile.layerFlops(64) / (pace.decodeMs / 1000),
            prefillFlopsPerSec: L * profile.layerFlops(64) / (pace.prefillMs / 1000),
            heldLayers: DEVICE_LAYERS,
          },
          edgeState: {
            flopsPerSec: L * profile.layerFlops(64) / (pace.decodeMs / 1000),
            prefillFlopsPerSec: L * profile.layerFlops(64) / (pace.prefillMs / 1000),
          },
          wire: { decode: "f32", prefill: cheapest, pipelineRows: PIPELINE_ROWS },
        },
      );
      input.wire.bytesPerRow *= pace.rowBytesScale;
      input.model = pacedProfile(input.model);
      return predictStreamed(input, DEVICE_LAYERS, streamProfile).tokensPerSec;
    }).sort((a, b) => a - b);
    return { extraRtts, tokensPerSec: tps[tps.length >> 1] };
  });
  console.log("Deno keep-alive bug:", JSON.stringify(connResults), JSON.stringify(rates));

  await routerFigures({
    quick,
    runs,
    modelled,
    calib,
    wires,
    thresholds,
    prefillWire: cheapest,
    tokensPerWord,
    pace,
    maxTokens,
    jobs,
    flopsPerSec,
    edgeFlopsPerSec,
    deviceLayers: DEVICE_LAYERS,
    streamProfile,
    exitFit: {
      plainAcceptance,
      acceptance,
      trainPlain: fitted.plainAgreement,
      trainAdapted: fitted.agreement,
      options: quick ? { count: 8, epochs: 3 } : EXIT_FIT,
    },
    connClose: { results: connResults, rates },
    writeResults,
  });
  device.dispose();
}
