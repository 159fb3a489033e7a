/**
 * The router's entry point: one call decides where a query runs — on the device (`local`),
 * split at layer K with self-speculation, or on the edge (`cloud`, token ids only) — runs it,
 * and streams the tokens. The decision log says why (each decision carries its reason and its
 * predicted cost and latency); the metrics say what it cost.
 *
 * When the edge is slow (no answer within `timeoutMs`) or unreachable mid-generation, the
 * policy decides again with the edge marked unavailable and generation continues from the
 * tokens already produced: on the device's early-exit head (`local`, flagged `degraded` when
 * the device holds fewer than all layers), or on whatever route the policy answers.
 *
 * Greedy split output with an `f32` decode wire equals the all-cloud tokens; an `f16`/`int8`
 * prompt wire trades that exactness for bytes (the router bench measures the agreement).
 *
 * @example
 * ```ts
 * import { routedGenerate } from "./routed.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine; // embedding, layers [0, H), head
 * const run = routedGenerate(engine, [1, 403, 89], {
 *   edge: "http://127.0.0.1:8787", modelId: "stories260K", modelDigest: "…", maxTokens: 64,
 *   wire: { prefill: "f16", pipelineRows: 64 },
 * });
 * for await (const token of run) console.log(token);
 * console.log(run.decisions().map((d) => d.reason), run.metrics().edgeFlops);
 * ```
 *
 * @module
 */

import { generationFlops } from "./cost.ts";
import { cloudGenerate } from "./cloud_generate.ts";
import { earlyExitGenerate } from "./early_exit.ts";
import type { EdgeMonitor } from "./edge_monitor.ts";
import { draftHeadFlops, type ExitAdapter } from "./exit_adapter.ts";
import type { Engine } from "./engine.ts";
import { check, TandemError } from "./errors.ts";
import { estimatingFetch } from "./estimating_fetch.ts";
import { MetricsRecorder, type RequestMetrics } from "./router/accounting.ts";
import { NetworkEstimator } from "./router/network.ts";
import { DefaultPolicy } from "./router/policy.ts";
import type { TtftCorrector } from "./router/ttft_corrector.ts";
import type { Decision, Policy, PrefillKind } from "./router/types.ts";
import { type RouterContext, routerInputFor } from "./router_input.ts";
import { createSession, type SplitSession } from "./session.ts";
import { generateSpeculative } from "./speculate_session.ts";
import { generateStreamed } from "./draft_stream.ts";
import { combineMetrics } from "./routed_metrics.ts";

/** Options of {@linkcode routedGenerate}. */
export interface RoutedOptions extends RouterContext {
  /** Edge base URL. */
  edge: string | URL;
  /** Model id the edge knows. */
  modelId: string;
  /** Weights digest of the whole model. */
  modelDigest: string;
  /** The policy (default {@linkcode DefaultPolicy}). */
  policy?: Policy;
  /**
   * The network estimator, updated by every request (default: a fresh one); give the same one
   * to {@linkcode openRoutedSession} so a prepared session's requests feed it too.
   */
  estimator?: NetworkEstimator;
  /** Feed the estimator from this run's requests (default true). */
  estimate?: boolean;
  /** Most tokens (default 256). */
  maxTokens?: number;
  /** Stop at EOS/BOS (default true). */
  stopAtEos?: boolean;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** The edge's API key. */
  apiKey?: string;
  /** A request (or the gap between streamed tokens) longer than this fails over (default 5000). */
  timeoutMs?: number;
  /** Retries of a request that got no answer before failing over (default 1). */
  retries?: number;
  /** Most re-decisions after failures (default 2); past it the error is thrown. */
  maxFallbacks?: number;
  /**
   * Draft streaming, when a decision asks for it: `betweenRows` is awaited after each row is
   * computed, before it is sent (default one macrotask).
   */
  stream?: { betweenRows?: () => Promise<void> };
  /**
   * A fresh split session opened ahead of the query (e.g. when the user starts typing, with
   * {@linkcode openRoutedSession}); used when the decision is a split at its layer, else closed.
   */
  prepared?: SplitSession;
  /**
   * Exit adapters (`exit_adapter.ts`), one per split they were fitted for: drafts after layer
   * K, and a local answer from layers [0, K), go through the one for K when present.
   */
  exitAdapters?: readonly ExitAdapter[];
  /**
   * Reads the edge's load and speed from its `/metrics` before deciding (`edge_monitor.ts`);
   * what it has measured overrides `edgeState`.
   */
  edgeMonitor?: EdgeMonitor;
  /**
   * Learns how far measured times to first token fall from the cost model's, per prefill kind,
   * and corrects the predictions with it (`router/ttft_corrector.ts`); updated by each query's
   * first token. Keep one for the app's lifetime, as the estimator. Default: none (the cost
   * model as is).
   */
  ttft?: TtftCorrector;
  /**
   * Re-deciding during generation (default on): every `everyTokens` tokens (16), when the
   * running route streams slower than predicted by more than `minGain` (0.25), the policy is
   * asked again with what the run has measured; the run switches when another route's
   * predicted time for the rest, its prefill of the context included, beats the running route's
   * measured pace by `minGain`. `false` keeps the first decision (failures still re-decide).
   */
  reroute?: false | { everyTokens?: number; minGain?: number };
}

/** The corrector's kind for how a session's prompt went (a refused token prefill: none). */
const SENT_AS: Record<NonNullable<SplitSession["lastPrefill"]>, PrefillKind | undefined> = {
  tokens: "ids",
  pipelined: "pipelined",
  rows: "rows",
  refused: undefined,
};

/**
 * The fetch a routed run's requests go through: the caller's, feeding `estimator` unless
 * `options.estimate` is false.
 */
function routedFetch(
  options: RoutedOptions,
  estimator: NetworkEstimator | undefined,
): typeof globalThis.fetch | undefined {
  return options.estimate === false || !estimator
    ? options.fetch
    : estimatingFetch(estimator, options.fetch ?? globalThis.fetch.bind(globalThis));
}

/**
 * Opens a split session as {@linkcode routedGenerate} would (same wire, timeouts and, given
 * `options.estimator`, the same estimator fed by its requests), to hand it over as `prepared`
 * and keep the session set-up off the query's time to first token.
 *
 * @example
 * ```ts
 * import { openRoutedSession, routedGenerate } from "./routed.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine;
 * const opts = { edge: "http://127.0.0.1:8787", modelId: "m", modelDigest: "…" };
 * const prepared = await openRoutedSession(engine, 4, opts);
 * const run = routedGenerate(engine, [1, 2, 3], { ...opts, prepared });
 * ```
 */
export async function openRoutedSession(
  engine: Engine,
  split: number,
  options: RoutedOptions,
  fetch: typeof globalThis.fetch | undefined = routedFetch(options, options.estimator),
): Promise<SplitSession> {
  return await createSession({
    engine,
    modelId: options.modelId,
    modelDigest: options.modelDigest,
    split,
    edge: options.edge,
    wire: options.wire?.decode ?? "f32",
    prefillWire: options.wire?.prefill,
    pipelineRows: options.wire?.pipelineRows,
    fetch,
    headers: options.headers,
    apiKey: options.apiKey,
    timeoutMs: options.timeoutMs ?? 5000,
    retries: options.retries ?? 1,
  });
}

/** A decision as it was taken during a run. */
export interface RoutedDecision extends Decision {
  /** Tokens produced before it. */
  atToken: number;
  /** The tokens it produces may differ from the whole model's (early exit). */
  degraded: boolean;
  /** The failure that made the router decide again. */
  trigger?: string;
}

/** The token stream of a routed query, with its decisions and cost. */
export interface RoutedRun extends AsyncIterableIterator<number> {
  /** Decisions so far, in order (more than one after a fallback). */
  decisions(): RoutedDecision[];
  /** One metrics record per route taken. */
  segments(): RequestMetrics[];
  /** The whole query's cost and latency (complete once the iterator is done). */
  metrics(): RequestMetrics;
}

const FAILOVER = new Set(["network", "session_not_found", "capacity", "rate_limited", "conflict"]);

/**
 * Decides, runs and streams one query (see the module doc).
 *
 * @example
 * ```ts
 * import { routedGenerate } from "./routed.ts";
 * import { FixedPolicy } from "./router/policy.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine;
 * const tokens = await Array.fromAsync(routedGenerate(engine, [1], { edge: "http://127.0.0.1:8787",
 *   modelId: "m", modelDigest: "…", policy: new FixedPolicy(3, 6), maxTokens: 16 }));
 * ```
 */
export function routedGenerate(
  engine: Engine,
  prompt: readonly number[],
  options: RoutedOptions,
): RoutedRun {
  check(prompt.length > 0, "bad_argument", "Cannot generate: empty prompt");
  const c = engine.config;
  const L = c.nLayers;
  const policy = options.policy ?? new DefaultPolicy();
  const estimator = options.estimator ?? new NetworkEstimator();
  const fetch = routedFetch(options, estimator);
  const maxTokens = options.maxTokens ?? 256;
  const stopAtEos = options.stopAtEos ?? true;
  const timeoutMs = options.timeoutMs ?? 5000;
  const headers = {
    ...options.headers,
    ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
  };
  const log: RoutedDecision[] = [];
  const segments: (() => RequestMetrics)[] = [];
  const overall = new MetricsRecorder({ route: "local", split: L, promptTokens: prompt.length });
  let prepared = options.prepared;
  const adapterFor = (K: number) => options.exitAdapters?.find((a) => a.split === K);

  /**
   * The policy's decision for the rest of the query, from what is known now (not logged);
   * `open`: splits with a session already open (a prepared one, or the running route's).
   */
  const evaluate = (produced: number, edgeUp: boolean, open: number[]): Decision => {
    const measured = options.edgeMonitor?.state;
    const input = routerInputFor(
      engine,
      estimator.state,
      { promptTokens: prompt.length + produced, maxTokens: maxTokens - produced },
      measured ? { ...options, edgeState: { ...options.edgeState, ...measured } } : options,
    );
    if (!edgeUp) input.edge = { ...input.edge, available: false };
    input.openSessions = open;
    if (options.ttft) input.ttftBiasMs = options.ttft.state;
    return policy.decide(input);
  };
  const adopt = (d: Decision, produced: number, trigger?: string): Decision => {
    const held = engine.parts.layers[1];
    log.push({ ...d, atToken: produced, degraded: d.route === "local" && held < L, trigger });
    return d;
  };
  // Only a prepared, unused session spares a split its opening request.
  const decide = (produced: number, edgeUp: boolean, trigger?: string): Decision =>
    adopt(
      evaluate(produced, edgeUp, prepared?.length === 0 ? [prepared.split] : []),
      produced,
      trigger,
    );
  const reroute = options.reroute === false ? undefined : {
    everyTokens: options.reroute?.everyTokens ?? 16,
    minGain: options.reroute?.minGain ?? 0.25,
  };
  check(
    !reroute || (Number.isInteger(reroute.everyTokens) && reroute.everyTokens >= 1 &&
      reroute.minGain >= 0 && reroute.minGain < 1),
    "bad_argument",
    () =>
      `Cannot route: reroute.everyTokens must be a whole number ≥ 1 and minGain in [0, 1), got ${reroute?.everyTokens} and ${reroute?.minGain}`,
  );
  /**
   * At a check point: the decision to switch to, or undefined. Only a route that streams slower
   * than its own prediction by more than `minGain` is reconsidered (re-routing answers a link or
   * an edge that got worse, not the cost model's optimism about an alternative); then the switch
   * needs the policy to pick another route whose predicted time for the rest (its prefill of the
   * whole context included) beats the running route's measured pace by `minGain`.
   */
  const better = (d: Decision, produced: number, paceMs: number): Decision | undefined => {
    const expected = d.predicted.tokensPerSec;
    if (!Number.isFinite(expected) || 1000 / paceMs >= (1 - reroute!.minGain) * expected) {
      return undefined;
    }
    const next = evaluate(produced, true, d.route === "split" ? [d.split] : []);
    const same = next.route === d.route && next.split === d.split &&
      next.maxDraft === d.maxDraft && !next.streamed === !d.streamed;
    const restMs = (maxTokens - produced) * paceMs;
    if (
      same || next.route === "local" || !(next.predicted.totalMs < (1 - reroute!.minGain) * restMs)
    ) {
      return undefined;
    }
    return adopt(
      next,
      produced,
      `reroute: the running route streams ${(1000 / paceMs).toFixed(1)} tok/s, ${
        Math.round(restMs)
      } ms for the rest; this is predicted ${Math.round(next.predicted.totalMs)} ms`,
    );
  };

  /** How the running segment's prompt went (set when its first token arrives). */
  let sentAs: PrefillKind | undefined;
  async function* route(d: Decision, context: number[], budget: number): AsyncGenerator<number> {
    sentAs = undefined;
    if (d.route === "local") {
      const rec = new MetricsRecorder({ route: "local", split: L, promptTokens: context.length });
      segments.push(() => rec.finish());
      const H = Math.min(L, engine.parts.layers[1]);
      let n = 0;
      const exit = H < L ? adapterFor(H) : undefined;
      for (const t of earlyExitGenerate(engine, context, budget, stopAtEos, exit)) {
        n++;
        rec.tokens(1, true);
        yield t;
      }
      rec.flops(generationFlops(c, context.length, n, H, draftHeadFlops(c, exit)));
      return;
    }
    if (d.route === "cloud") {
      const rec = new MetricsRecorder({ route: "cloud", split: 0, promptTokens: context.length });
      segments.push(() => rec.finish());
      const target = { edge: options.edge, modelId: options.modelId, fetch, headers };
      const run = cloudGenerate({ ...target, idleTimeoutMs: timeoutMs }, context, budget);
      let n = 0;
      try {
        for await (const t of run) {
          if (n++ === 0) sentAs = "ids";
          rec.tokens(1);
          yield t;
        }
      } finally {
        rec.flops(0, generationFlops(c, context.length, n));
        rec.roundTrip({ bytesUp: run.bytesUp(), bytesDown: run.bytesDown(), answered: n });
      }
      return;
    }
    const ready = prepared?.split === d.split && prepared.length === 0 ? prepared : undefined;
    prepared = undefined;
    const session = ready ?? await openRoutedSession(engine, d.split, options, fetch);
    const canStream = d.streamed !== undefined && session.streamPort().stream() !== undefined;
    if (d.streamed && !canStream) {
      // The edge speaks wire < 1.1: plain split, and the log says so.
      const logged = log[log.length - 1];
      logged.reason += "; the edge cannot stream drafts (wire < 1.1): plain split instead";
      logged.streamed = undefined;
    }
    const tokenPrefill = d.prefill === "tokens";
    if (tokenPrefill && !session.tokenPrefill) {
      // The edge does not hold [0, K) (or speaks wire < 1.2): the prompt goes as rows.
      log[log.length - 1].reason += "; the edge cannot prefill from token ids: rows instead";
      log[log.length - 1].prefill = undefined;
    }
    const steps = d.maxDraft > 0 ? policy.stepFor?.(d) ?? policy : "plain";
    const run = canStream
      ? generateStreamed(session, engine, context, {
        maxTokens: budget,
        stopAtEos,
        maxInFlight: d.streamed!.maxInFlight,
        betweenRows: options.stream?.betweenRows,
        tokenPrefill,
        pipeline: d.prefill !== "whole",
        exitAdapter: adapterFor(d.split),
      })
      : generateSpeculative(session, engine, context, {
        maxTokens: budget,
        stopAtEos,
        policy: steps,
        tokenPrefill,
        pipeline: d.prefill !== "whole",
        exitAdapter: adapterFor(d.split),
      });
    segments.push(() => run.metrics());
    let ok = false;
    const logged = log[log.length - 1];
    try {
      for await (const t of run) {
        sentAs ??= session.lastPrefill && SENT_AS[session.lastPrefill];
        if (logged.prefill === "tokens" && session.lastPrefill !== "tokens") {
          logged.reason += session.lastPrefill === "refused"
            ? "; the edge refused token prefill: rows instead"
            : session.lastPrefill === undefined
            ? "; a one-token prompt goes as its row"
            : "; the prompt does not fit one frame: rows instead";
          logged.prefill = undefined;
        }
        yield t;
      }
      ok = true;
    } finally {
      // After a failure, a slow or gone edge must not hold the caller: close in the background.
      const closing = session.close().catch(() => {});
      if (ok) await closing;
    }
  }

  async function* all(): AsyncGenerator<number, void, void> {
    const produced: number[] = [];
    await options.edgeMonitor?.refresh(); // at most once per its interval; never throws
    let d = decide(0, true);
    // The first decision's time to first token, for the corrector (its route only).
    const decidedAt = performance.now();
    if (prepared && !(d.route === "split" && d.split === prepared.split)) {
      prepared.close().catch(() => {});
      prepared = undefined;
    }
    let edgeTrusted = true; // after a failure the run stays where it fell back to
    for (let fallbacks = 0;; fallbacks++) {
      try {
        let switched: Decision | undefined;
        // Arrival times of the segment's tokens from its second on: the first is the prompt's
        // answer, the gap to the second the drafting's warm-up; the pace is what follows.
        const times: number[] = [];
        let seen = 0;
        for await (const t of route(d, [...prompt, ...produced], maxTokens - produced.length)) {
          if (seen++ > 0) times.push(performance.now());
          else if (produced.length === 0 && fallbacks === 0 && sentAs) {
            // The prompt's answer on the first route, sent the way it was predicted (token ids
            // the edge refused went as rows: a sample of neither).
            if ((sentAs === "ids") === (d.route === "cloud" || d.prefill === "tokens")) {
              options.ttft?.observe(sentAs, performance.now() - decidedAt, d.predicted.ttftMs);
            }
          }
          produced.push(t);
          overall.tokens(1);
          yield t;
          // Every few tokens, check the pace against the prediction (and maybe re-decide).
          const n = edgeTrusted ? reroute?.everyTokens ?? 0 : 0;
          if (n > 0 && times.length > n && times.length % n === 1 && produced.length < maxTokens) {
            const paceMs = (times[times.length - 1] - times[times.length - 1 - n]) / n;
            await options.edgeMonitor?.refresh();
            switched = better(d, produced.length, paceMs);
            if (switched) break; // leaving the loop closes the running route
          }
        }
        if (!switched) return;
        d = switched;
        fallbacks--; // a switch is not a failure
        continue;
      } catch (e) {
        if (prepared) prepared.close().catch(() => {});
        prepared = undefined;
        const code = e instanceof TandemError ? e.code : "";
        if (!FAILOVER.has(code) || fallbacks >= (options.maxFallbacks ?? 2)) throw e;
        if (produced.length >= maxTokens) return;
        d = decide(produced.length, false, `${code}: ${(e as Error).message}`);
        edgeTrusted = false;
      }
    }
  }

  return Object.assign(all(), {
    decisions: () => [...log],
    segments: () => segments.map((s) => s()),
    metrics: () => combineMetrics(overall.finish(), segments.map((s) => s())),
  }) as RoutedRun;
}
