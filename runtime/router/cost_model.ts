/**
 * The latency and cost model, Neurosurgeon-style: per-layer FLOPs divided by measured
 * throughputs, plus transfer and round-trip times, for every split point `0 ..= L`
 * (0 = all-cloud, L = all-local).
 *
 * | route   | time to first token                                   | each later round trip               |
 * | ------- | ----------------------------------------------------- | ----------------------------------- |
 * | cloud   | up(ids) + rtt + edge(n·L layers + head)                | none: the edge streams every token  |
 * | split K | device(n·K) + up(n rows) + rtt + edge(n·(L−K) + head)  | device + up + rtt + edge + down, for E tokens |
 * | local   | device(n·L + head)                                    | none                                |
 *
 * A pass of n rows costs one row at the decode rate (`flopsPerSec`) and n − 1 at the batched
 * rate (`prefillFlopsPerSec`). Prompt rows may use a cheaper dtype (`wire.prefillBytesPerRow`);
 * a pipelined prompt (`wire.pipelineRows`) is a three-stage pipeline of c chunks — the device
 * computes chunk i+1 while chunk i is on the link and the edge runs [K, L) on chunk i − 1 as it
 * arrives: `(dev + up + edge)/c + (c − 1)·max(dev, up, edge)/c` instead of `dev + up + edge`.
 *
 * Edge time is `flops / flopsPerSec / (1 − load) + queueMs`. With self-speculation a round
 * trip answers `tokensPerRoundTrip` tokens at `rowsPerToken` edge rows each.
 *
 * Token prefill (`prefill = "tokens"`, wire 1.2): the prompt goes as token ids and the edge
 * runs all L layers over it — all-cloud's TTFT, `n·K` more edge layer-rows than a row prefill
 * — while the device computes its own [0, K) cache in chunks meanwhile; decoding starts at
 * max(TTFT, the device's prefill).
 *
 * @example
 * ```ts
 * import { predictAll } from "./cost_model.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * for (const p of predictAll(input)) console.log(p.split, p.cloudShare, p.ttftMs);
 * ```
 *
 * @module
 */

import type {
  ModelProfile,
  Prediction,
  PrefillChoice,
  PrefillKind,
  RouterInput,
  SpeculationProfile,
} from "./types.ts";

/** FLOPs of `n` tokens at positions pos.. through `layers` layers (context grows per token). */
function rowsFlops(m: ModelProfile, layers: number, pos: number, n: number): number {
  if (layers === 0 || n === 0) return 0;
  // Attention cost is linear in the context: the mean context gives the exact sum.
  return layers * n * m.layerFlops(pos + (n + 1) / 2);
}

/** FLOPs of the whole model for a query (prefill + decode, head once per token): the cloud's. */
function wholeFlops(m: ModelProfile, prompt: number, tokens: number): number {
  return rowsFlops(m, m.nLayers, 0, prompt) + rowsFlops(m, m.nLayers, prompt, tokens - 1) +
    tokens * m.headFlops;
}

/** Rows per chunk of the device's own prefill during a token prefill (its pipeline chunk). */
function localChunk(input: RouterInput): number {
  return input.wire.pipelineRows && input.wire.pipelineRows > 0 ? input.wire.pipelineRows : 16;
}

/**
 * The device's [0, K) prefill of the prompt, in chunks (token prefill runs it alongside the
 * edge's whole-model pass), ms.
 *
 * @example
 * ```ts
 * import { localPrefillMs } from "./cost_model.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * console.log(localPrefillMs(input, 4));
 * ```
 */
export function localPrefillMs(input: RouterInput, split: number): number {
  const { model: m, device } = input;
  const n = Math.max(1, input.query.promptTokens);
  const c = Math.ceil(n / localChunk(input));
  const f = rowsFlops(m, split, 0, n) / c;
  const rows = n / c;
  return c * 1000 * f / rows *
    (1 / device.flopsPerSec + (rows - 1) / (device.prefillFlopsPerSec ?? device.flopsPerSec));
}

/**
 * Predicts one split point: 0 = all-cloud, 1..L-1 = split at K, L = all-local; a split
 * drafts as `input.speculation[K]` says unless `draft` is false, and sends its prompt as
 * rows (pipelined where `wire.pipelineRows` asks; `prefill = "whole"`: in one frame), or as
 * token ids with `prefill = "tokens"`.
 *
 * @example
 * ```ts
 * import { predictSplit } from "./cost_model.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * console.log(predictSplit(input, 0).ttftMs, predictSplit(input, 3, false).totalMs);
 * ```
 */
export function predictSplit(
  input: RouterInput,
  split: number,
  draft: boolean | SpeculationProfile = true,
  prefill: PrefillChoice = "rows",
): Prediction {
  const { model: m, query, device, network: net, edge, wire } = input;
  const L = m.nLayers;
  const n = Math.max(1, query.promptTokens);
  const N = Math.max(1, query.maxTokens);
  const devMs = (f: number) => 1000 * f / device.flopsPerSec;
  const edgeMs = (f: number) => 1000 * f / edge.flopsPerSec / Math.max(1e-3, 1 - edge.load);
  // One pass of `rows` rows: the first at the decode rate, the others at the batched rate.
  const pass = (rate: number, batched: number | undefined, f: number, rows: number) =>
    rows <= 0 ? 0 : 1000 * f / rows * (1 / rate + (rows - 1) / (batched ?? rate));
  const devPassMs = (f: number, rows: number) =>
    pass(device.flopsPerSec, device.prefillFlopsPerSec, f, rows);
  const edgePassMs = (f: number, rows: number) =>
    pass(edge.flopsPerSec, edge.prefillFlopsPerSec, f, rows) / Math.max(1e-3, 1 - edge.load);
  const upMs = (b: number) => 1000 * b / net.upBytesPerSec;
  const downMs = (b: number) => 1000 * b / net.downBytesPerSec;
  const whole = wholeFlops(m, n, N);
  // The learned correction of this prefill kind (never below zero in all).
  const corrected = (kind: PrefillKind, ms: number) =>
    Math.max(0, ms + (input.ttftBiasMs?.[kind] ?? 0));
  const done = (
    p: Omit<Prediction, "cloudShare" | "cost" | "tokensPerSec" | "drafting">,
  ): Prediction => ({
    ...p,
    drafting: false,
    cloudShare: p.edgeFlops / whole,
    cost: p.edgeFlops * edge.pricePerFlop,
    tokensPerSec: N > 1 ? 1000 * (N - 1) / Math.max(1e-9, p.totalMs - p.ttftMs) : Infinity,
  });

  if (split <= 0) {
    const bytesUp = wire.requestBytes + 4 * n;
    const bytesDown = wire.replyBytesPerToken * N;
    const ttftMs = corrected(
      "ids",
      upMs(bytesUp) + net.rttMs + edge.queueMs + edgePassMs(rowsFlops(m, L, 0, n), n) +
        edgeMs(m.headFlops) + downMs(wire.replyBytesPerToken),
    );
    const perToken = Math.max(
      edgeMs(m.layerFlops(n + N / 2) * L + m.headFlops),
      downMs(wire.replyBytesPerToken),
    );
    return done({
      split: 0,
      deviceFlops: 0,
      edgeFlops: whole,
      bytesUp,
      bytesDown,
      roundTrips: 1,
      ttftMs,
      totalMs: ttftMs + (N - 1) * perToken,
    });
  }
  if (split >= L) {
    const ttftMs = devPassMs(rowsFlops(m, L, 0, n), n) + devMs(m.headFlops);
    const perToken = devMs(m.layerFlops(n + N / 2) * L + m.headFlops);
    return done({
      split: L,
      deviceFlops: whole,
      edgeFlops: 0,
      bytesUp: 0,
      bytesDown: 0,
      roundTrips: 0,
      ttftMs,
      totalMs: ttftMs + (N - 1) * perToken,
    });
  }
  const K = split;
  const spec = (typeof draft === "object" ? draft : draft ? input.speculation?.[K] : undefined) ??
    { tokensPerRoundTrip: 1, rowsPerToken: 1 };
  const E = Math.max(1, spec.tokensPerRoundTrip);
  const rows = Math.max(1, spec.rowsPerToken);
  const steps = Math.ceil((N - 1) / E);
  const ctx = n + N / 2;
  // Prefill: the prompt's rows go up in one frame; the edge answers the first token. A
  // pipelined prompt is a three-stage pipeline of c chunks (each chunk its own pass on both
  // sides): the device computes chunk i+1 while i uploads and the edge runs i − 1.
  const tokens = prefill === "tokens";
  const prefillUp = wire.requestBytes +
    n * (tokens ? 4 : wire.prefillBytesPerRow ?? wire.bytesPerRow);
  // Rows this long pipeline unless sent whole; token ids never do.
  const pipelines = !tokens && n > (wire.pipelineRows || Infinity);
  const c = pipelines && prefill !== "whole" ? Math.ceil(n / wire.pipelineRows!) : 1;
  const dev = c * devPassMs(rowsFlops(m, K, 0, n) / c, n / c);
  const up = upMs(prefillUp);
  const edg = c * edgePassMs(rowsFlops(m, L - K, 0, n) / c, n / c);
  const prefillMs = tokens
    ? up + edgePassMs(rowsFlops(m, L, 0, n), n)
    : (dev + up + edg) / c + (c - 1) * Math.max(dev, up, edg) / c;
  // A split without an open session opens one first: one more request and answer.
  const openMs = input.openSessions && !input.openSessions.includes(K)
    ? upMs(wire.requestBytes) + net.rttMs + downMs(wire.requestBytes)
    : 0;
  const ttftMs = corrected(
    tokens ? "ids" : c > 1 ? "pipelined" : "rows",
    openMs + prefillMs + net.rttMs + edge.queueMs + edgeMs(m.headFlops) +
      downMs(wire.replyBytesPerToken),
  );
  // Token prefill: decoding needs the device's own [0, K) cache, computed meanwhile.
  const decodeFrom = tokens ? Math.max(ttftMs, localPrefillMs(input, K)) : ttftMs;
  // Each round trip: E tokens, E·rows rows through both halves (device drafts with its head).
  const rtRows = E * rows;
  const rtUp = wire.requestBytes + rtRows * wire.bytesPerRow;
  const rtDown = wire.replyBytesPerToken * E;
  const rtMs = devMs(rtRows * (K * m.layerFlops(ctx) + (E > 1 ? m.headFlops : 0))) +
    upMs(rtUp) + net.rttMs + edge.queueMs +
    edgeMs(rtRows * ((L - K) * m.layerFlops(ctx) + m.headFlops)) + downMs(rtDown);
  const decodeRows = (N - 1) * rows;
  const p = done({
    split: K,
    deviceFlops: rowsFlops(m, K, 0, n) + decodeRows * (K * m.layerFlops(ctx) +
          (E > 1 ? m.headFlops : 0)),
    edgeFlops: rowsFlops(m, tokens ? L : L - K, 0, n) + m.headFlops +
      decodeRows * ((L - K) * m.layerFlops(ctx) + m.headFlops),
    bytesUp: prefillUp + steps * wire.requestBytes + decodeRows * wire.bytesPerRow,
    bytesDown: wire.replyBytesPerToken * N,
    roundTrips: (openMs > 0 ? 2 : 1) + steps,
    ttftMs,
    totalMs: decodeFrom + steps * rtMs,
  });
  const q = tokens
    ? { ...p, prefill: "tokens" as const }
    : pipelines && prefill === "whole"
    ? { ...p, prefill: "whole" as const }
    : p;
  return E > 1 ? { ...q, drafting: true, speculation: spec } : q;
}

/**
 * Predictions for every split point 0..L, in order.
 *
 * @example
 * ```ts
 * import { predictAll } from "./cost_model.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * console.log(predictAll(input).length); // L + 1
 * ```
 */
export function predictAll(input: RouterInput): Prediction[] {
  return Array.from({ length: input.model.nLayers + 1 }, (_, k) => predictSplit(input, k));
}

/**
 * The deepest split the device can run: the layers it holds, bounded by its free memory.
 *
 * @example
 * ```ts
 * import { maxDeviceLayers } from "./cost_model.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * console.log(maxDeviceLayers(input));
 * ```
 */
export function maxDeviceLayers(input: RouterInput): number {
  const { model: m, device } = input;
  const fit = Math.floor((device.freeBytes - m.baseBytes) / Math.max(1, m.layerBytes));
  return Math.max(0, Math.min(m.nLayers, device.heldLayers ?? m.nLayers, fit));
}
