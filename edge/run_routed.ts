/**
 * One routed generation from start to finish, for `deno task demo`: the device holds the
 * embedding, layers [0, H) and the head; the router (`routedGenerate`, default policy) decides
 * local / split / cloud from the measured device speed and the link (estimated from a few
 * requests), runs it against an edge — the one at `edge`, or one started on loopback — streams
 * the text, and reports the decisions with their reasons and what the query cost.
 *
 * Deno only (the loopback edge uses `hosts/deno.ts`).
 *
 * @example
 * ```ts
 * import { formatRoutedReport, runRoutedGeneration } from "./run_routed.ts";
 * import type { Model } from "../runtime/model.ts";
 * import type { Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
 * declare const model: Model; declare const tokenizer: Tokenizer;
 * const report = await runRoutedGeneration({ model, tokenizer, prompt: "Once upon a time",
 *   maxTokens: 100, onText: (t) => console.log(t) });
 * console.log(formatRoutedReport(report));
 * ```
 *
 * @module
 */

import { generationFlops } from "../runtime/cost.ts";
import { digestModel } from "../runtime/digest.ts";
import { estimatingFetch } from "../runtime/estimating_fetch.ts";
import { TandemError } from "../runtime/errors.ts";
import { fitExitAdapter } from "../runtime/exit_adapter.ts";
import { RefEngine } from "../runtime/forward.ts";
import type { Model } from "../runtime/model.ts";
import { type RoutedDecision, routedGenerate } from "../runtime/routed.ts";
import type { RequestMetrics } from "../runtime/router/accounting.ts";
import { NetworkEstimator } from "../runtime/router/network.ts";
import { DefaultPolicy } from "../runtime/router/policy.ts";
import { measureEngineFlops } from "../runtime/router_input.ts";
import { cutModel } from "../runtime/shard.ts";
import { StreamDecoder, type Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
import { createEdgeApp } from "./app.ts";
import { serveEdge } from "./hosts/deno.ts";

const DEMO_SPECULATION = {
  tokensPerRoundTrip: 1.55,
  rowsPerToken: 1.39,
  draftTop1: 0.3,
  maxDraft: 2,
};

/** How the demo fits the device's exit adapter: small, so it takes a few seconds. */
const EXIT_FIT = { count: 8, length: 128, epochs: 3 };

/** Options of {@linkcode runRoutedGeneration}. */
export interface RoutedRunOptions {
  /** The whole model (the device keeps layers [0, deviceLayers) of it). */
  model: Model;
  /** Its tokenizer. */
  tokenizer: Tokenizer;
  /** Prompt text (BOS is prepended). */
  prompt: string;
  /** Layers the device holds (default L − 1: the edge keeps at least one). */
  deviceLayers?: number;
  /** Edge URL serving the model as `modelId`; default: one on loopback for the run. */
  edge?: string;
  /** Model id on the edge (default "stories260K"). */
  modelId?: string;
  /** Most tokens (default 200). */
  maxTokens?: number;
  /** Called with each piece of text as it streams. */
  onText: (text: string) => void;
}

/** What a routed run did and cost. */
export interface RoutedReport {
  /** The decisions, in order. */
  decisions: RoutedDecision[];
  /** The query's metrics. */
  metrics: RequestMetrics;
  /** FLOPs the edge would have run all-cloud. */
  cloudFlops: number;
  /** Layers the device held. */
  deviceLayers: number;
  /** Model layers. */
  nLayers: number;
  /** The device's exit adapter (fitted at start when it holds fewer layers than the model). */
  exitAdapter?: { fitMs: number; agreement: number; plainAgreement: number };
}

/**
 * Runs a routed generation and reports on it.
 *
 * @example
 * ```ts
 * import { runRoutedGeneration } from "./run_routed.ts";
 * import type { Model } from "../runtime/model.ts";
 * import type { Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
 * declare const model: Model; declare const tokenizer: Tokenizer;
 * await runRoutedGeneration({ model, tokenizer, prompt: "", onText: () => {} });
 * ```
 */
export async function runRoutedGeneration(o: RoutedRunOptions): Promise<RoutedReport> {
  const c = o.model.config;
  const H = o.deviceLayers ?? Math.max(1, c.nLayers - 1);
  if (!(Number.isInteger(H) && H >= 1 && H <= c.nLayers)) {
    throw new TandemError("bad_argument", `Cannot route: device layers ${H} not 1..${c.nLayers}`);
  }
  const digest = (await digestModel(o.model)).modelDigest!;
  const modelId = o.modelId ?? "stories260K";
  const local = o.edge
    ? undefined
    : await createEdgeApp({ models: [{ id: modelId, model: o.model }] });
  const server = local ? serveEdge(local.fetch) : undefined;
  const edge = o.edge ?? server!.url;
  const engine = new RefEngine(cutModel(o.model, { layers: [0, H], embed: true, head: true }));
  // The device drafts through an exit adapter fitted here on text the model samples itself
  // (a few seconds for stories260K; a real app fits it once, offline, and ships the file).
  const t0 = performance.now();
  const fitted = H < c.nLayers ? fitExitAdapter(o.model, H, EXIT_FIT) : undefined;
  const fitMs = performance.now() - t0;
  try {
    // What the router knows: this device's measured speed and the link, from a few requests.
    measureEngineFlops(engine);
    const flopsPerSec = measureEngineFlops(engine);
    const estimator = new NetworkEstimator();
    const f = estimatingFetch(estimator);
    for (let i = 0; i < 3; i++) await (await f(`${edge}/healthz`)).text();
    const prompt = o.tokenizer.encode(o.prompt, { bos: true });
    const run = routedGenerate(engine, prompt, {
      edge,
      modelId,
      modelDigest: digest,
      policy: new DefaultPolicy(),
      estimator,
      device: { flopsPerSec },
      edgeState: { flopsPerSec },
      wire: { decode: "f32", prefill: "f16", pipelineRows: 16 },
      // Drafting as the router bench observed it for stories260K at K = 4 (bench/README.md,
      // "router": draftTop1 0.3, ≤ 2 drafts a trip); other models should measure their own.
      speculation: Array.from(
        { length: c.nLayers + 1 },
        (_, k) => k === H ? DEMO_SPECULATION : undefined,
      ),
      exitAdapters: fitted ? [fitted.adapter] : undefined,
      maxTokens: o.maxTokens ?? 200,
    });
    const decoder = new StreamDecoder(o.tokenizer, prompt);
    let n = 0;
    for await (const t of run) {
      n++;
      const piece = decoder.push(t);
      if (piece) o.onText(piece);
    }
    const tail = decoder.flush();
    if (tail) o.onText(tail);
    const cloudFlops = generationFlops(c, prompt.length, n);
    return {
      decisions: run.decisions(),
      metrics: run.metrics(),
      cloudFlops,
      deviceLayers: H,
      nLayers: c.nLayers,
      exitAdapter: fitted
        ? { fitMs, agreement: fitted.agreement, plainAgreement: fitted.plainAgreement }
        : undefined,
    };
  } finally {
    engine.dispose();
    await server?.close();
    local?.dispose();
  }
}

const num = (x: number, d = 1) => x.toFixed(d);

/**
 * The decisions with their reasons, then the cost report.
 *
 * @example
 * ```ts
 * import { formatRoutedReport, type RoutedReport } from "./run_routed.ts";
 * declare const r: RoutedReport;
 * console.log(formatRoutedReport(r));
 * ```
 */
export function formatRoutedReport(r: RoutedReport): string {
  const m = r.metrics;
  const lines = r.decisions.map((d, i) =>
    `decision ${i + 1}${d.atToken ? ` (at token ${d.atToken}, after ${d.trigger})` : ""}: ${
      d.route === "split" ? `split at layer ${d.split}` : d.route
    }${d.degraded ? " [degraded: early exit]" : ""} — ${d.reason}`
  );
  const saved = 100 * (1 - m.edgeFlops / r.cloudFlops);
  const bytes = (m.bytesUp + m.bytesDown) / Math.max(1, m.tokens);
  return [
    ...lines,
    `device holds layers [0, ${r.deviceLayers}) of ${r.nLayers} and the head${
      r.exitAdapter
        ? `, drafting through an exit adapter (fitted in ${
          num(r.exitAdapter.fitMs / 1000)
        } s: agrees with the whole model on ${
          num(100 * r.exitAdapter.agreement)
        }% of its sampled text, the plain head on ${num(100 * r.exitAdapter.plainAgreement)}%)`
        : ""
    }`,
    `tokens: ${m.tokens}, time to first token ${num(m.ttftMs)} ms, ${num(m.tokensPerSec)} tok/s`,
    `cloud FLOPs: ${num(m.edgeFlops / 1e6, 2)} M vs ${num(r.cloudFlops / 1e6, 2)} M all-cloud (${
      num(saved)
    }% saved)`,
    `round trips: ${m.roundTrips}, ${
      m.tokensPerRoundTrip ? num(m.tokensPerRoundTrip, 2) : "—"
    } tokens per decode round trip (drafts ${m.accepted}/${m.drafted} accepted)`,
    `bytes: ${m.bytesUp} up, ${m.bytesDown} down (${num(bytes)} per token)`,
  ].join("\n");
}
