/**
 * The router contract: what the router reads (query, the local model's confidence, device,
 * network, edge) and what it answers (a {@linkcode Decision} carrying its reason and its
 * predicted cost and latency). Pure data: imported by the device and the edge alike.
 *
 * Splits are numbered by the layer where the edge takes over: `0` is all-cloud (the edge
 * runs everything), `1 .. L-1` is a split, `L` is all-local.
 *
 * @example
 * ```ts
 * import type { Decision } from "./types.ts";
 * const d: Decision = { route: "cloud", split: 0, maxDraft: 0, reason: "edge only",
 *   policy: "cloud", predicted: [] as never, baseline: [] as never };
 * console.log(d.route);
 * ```
 *
 * @module
 */

/** What the router needs to know about the model, per layer (Neurosurgeon's per-layer view). */
export interface ModelProfile {
  /** Transformer layers L. */
  nLayers: number;
  /** Width of the boundary activation (values per row on the wire). */
  dim: number;
  /** FLOPs of one token through one layer at context length `ctx`. */
  layerFlops(ctx: number): number;
  /** FLOPs of the final norm + classifier for one token. */
  headFlops: number;
  /** Weight bytes of one layer (as the device would hold them). */
  layerBytes: number;
  /** Weight bytes of the embedding, final norm and classifier (held by any device). */
  baseBytes: number;
}

/** The query as the router sees it before generation starts. */
export interface QueryFeatures {
  /** Prompt length in tokens. */
  promptTokens: number;
  /** Tokens requested (an upper bound on what will be generated). */
  maxTokens: number;
}

/** The early-exit head's view of one step: final norm + classifier after layer K. */
export interface Confidence {
  /** The early-exit head's argmax token. */
  token: number;
  /** Its softmax probability. */
  top1: number;
  /** top-1 minus top-2 probability. */
  margin: number;
  /** Entropy of the distribution, in nats. */
  entropy: number;
}

/** What the device can do, measured in this process. */
export interface DeviceCapability {
  /** Measured FLOP/s of the device engine on transformer layers (decode: one row a pass). */
  flopsPerSec: number;
  /**
   * FLOP/s on the extra rows of a batched pass (prompt rows share one read of the weights, so
   * they run faster than decode rows); default `flopsPerSec`.
   */
  prefillFlopsPerSec?: number;
  /** Memory the device may spend on weights, in bytes. */
  freeBytes: number;
  /** Threads the device engine uses. */
  threads: number;
  /** Layers the device actually holds (a device shard); default: all it can fit. */
  heldLayers?: number;
}

/** The link between device and edge, as estimated from real requests. */
export interface NetworkState {
  /** Smoothed round-trip time, ms. */
  rttMs: number;
  /** Smoothed mean deviation of the round-trip time, ms. */
  rttVarMs: number;
  /** Device → edge bandwidth, bytes/s. */
  upBytesPerSec: number;
  /** Edge → device bandwidth, bytes/s. */
  downBytesPerSec: number;
}

/** What the edge advertises. */
export interface EdgeState {
  /** Whether the edge can be reached at all. */
  available: boolean;
  /** FLOP/s the edge gives one session when idle (decode: one row a pass). */
  flopsPerSec: number;
  /** FLOP/s on the extra rows of a batched pass (prompt rows); default `flopsPerSec`. */
  prefillFlopsPerSec?: number;
  /** Utilisation 0..1; compute slows by 1 / (1 - load). */
  load: number;
  /** Expected wait before a request starts, ms. */
  queueMs: number;
  /** Advertised price of one edge FLOP (any currency unit). */
  pricePerFlop: number;
}

/** Sizes of the wire protocol, for byte and transfer-time predictions. */
export interface WireProfile {
  /** Bytes of one boundary row on the wire (e.g. 4·dim for f32, dim + 4 for int8). */
  bytesPerRow: number;
  /** Bytes of one prompt row, when prompts use another dtype (e.g. 2·dim for f16). */
  prefillBytesPerRow?: number;
  /** Rows per chunk of a pipelined prompt (0 or absent: the prompt is computed, then sent). */
  pipelineRows?: number;
  /** Fixed bytes per request (frame header, HTTP overhead). */
  requestBytes: number;
  /** Bytes per answered token plus the closing line, averaged. */
  replyBytesPerToken: number;
}

/** How self-speculation behaves, as observed (or assumed before any observation). */
export interface SpeculationProfile {
  /** Tokens answered per round trip (1 without drafting). */
  tokensPerRoundTrip: number;
  /** Rows the edge runs per answered token (1 without drafting; more with rejected drafts). */
  rowsPerToken: number;
  /** The draft threshold this was observed with (early-exit top-1 probability). */
  draftTop1?: number;
  /** The most drafts per round trip it was observed with. */
  maxDraft?: number;
}

/**
 * Draft streaming at a split (wire 1.1): the device sends every drafted row at once, several in
 * flight, and the edge computes only those on its verified branch. Its rate follows from the
 * device's row time, the round trip and how often the early-exit head agrees with the model.
 */
export interface StreamProfile {
  /**
   * Probability that the early-exit head's token after layer K equals the whole model's, per
   * token on the verified context (1 − the mismatch rate; each mismatch costs a round trip).
   */
  acceptance: number;
  /** Most rows in flight at once. */
  maxInFlight: number;
}

/** Everything a policy decides from. */
export interface RouterInput {
  /** The model. */
  model: ModelProfile;
  /** The query. */
  query: QueryFeatures;
  /** The device. */
  device: DeviceCapability;
  /** The network. */
  network: NetworkState;
  /** The edge. */
  edge: EdgeState;
  /** Wire sizes. */
  wire: WireProfile;
  /** Speculation per split K (index K); missing entries mean no drafting. */
  speculation?: (SpeculationProfile | undefined)[];
  /**
   * Drafting variants per split K (index K), each observed with its own `draftTop1` and
   * `maxDraft`: the policy weighs them all (long drafts pay off on slow round trips).
   */
  draftVariants?: (SpeculationProfile[] | undefined)[];
  /** Draft streaming per split K (index K); missing entries: the route is not offered. */
  streaming?: (StreamProfile | undefined)[];
  /**
   * Token prefill (wire 1.2) may be offered: a split's prompt goes as token ids and the edge
   * runs the whole model over it (all-cloud's TTFT, more cloud FLOPs) while the device
   * computes its own [0, K) cache. Absent or false: prompts go as rows.
   */
  tokenPrefill?: boolean;
  /**
   * Splits at which a fresh session is already open (e.g. prepared while the user typed). A
   * split elsewhere first opens one: a request and its answer before the prompt goes. Absent:
   * every split is taken to have its session open.
   */
  openSessions?: readonly number[];
  /**
   * Learned corrections to the predicted time to first token, ms, per prefill kind
   * (`TtftCorrector`): added to every prediction of that kind. Absent: none.
   */
  ttftBiasMs?: TtftBias;
}

/**
 * How a route gets its prompt to the model: `pipelined` (a split streams the prompt's hidden rows
 * in chunks, `wire.pipelineRows`), `rows` (in one frame), or `ids` (token ids, the edge runs the
 * whole model over them: all-cloud, and a split's token prefill, which shares its path).
 */
export type PrefillKind = "pipelined" | "rows" | "ids";

/**
 * How a split sends its prompt: `rows` (pipelined in chunks where `wire.pipelineRows` asks and
 * the prompt is longer), `whole` (rows in one frame, never pipelined) or `tokens` (token ids).
 */
export type PrefillChoice = "rows" | "whole" | "tokens";

/** Corrections to predicted time to first token, ms, per prefill kind. */
export type TtftBias = Partial<Record<PrefillKind, number>>;

/** Where a query runs. */
export type Route = "local" | "split" | "cloud";

/** Predicted cost and latency of running the query at one split. */
export interface Prediction {
  /** Split: 0 cloud, 1..L-1 split, L local. */
  split: number;
  /** FLOPs on the device. */
  deviceFlops: number;
  /** FLOPs on the edge. */
  edgeFlops: number;
  /** Edge FLOPs divided by the all-cloud run's. */
  cloudShare: number;
  /** Bytes device → edge. */
  bytesUp: number;
  /** Bytes edge → device. */
  bytesDown: number;
  /** Requests to the edge. */
  roundTrips: number;
  /** Time to first token, ms. */
  ttftMs: number;
  /** Time to the last token, ms. */
  totalMs: number;
  /** Tokens per second after the first. */
  tokensPerSec: number;
  /** edgeFlops × price. */
  cost: number;
  /** Whether this prediction assumes self-speculative drafting. */
  drafting: boolean;
  /** The drafting variant assumed (when `drafting`). */
  speculation?: SpeculationProfile;
  /** Draft streaming assumed (then `drafting` is false: no stop-and-wait drafts). */
  streamed?: StreamProfile;
  /** Rows the device sends per token after the first (draft streaming: with dead rows). */
  rowsSentPerToken?: number;
  /**
   * `tokens`: the prompt goes as token ids (token prefill, wire 1.2); `whole`: as rows in one
   * frame although the wire pipelines prompts; absent: as rows, pipelined where the wire asks.
   */
  prefill?: "tokens" | "whole";
}

/** A policy's answer for one query: route, split, drafting, why, and what it expects. */
export interface Decision {
  /** Where the query runs. */
  route: Route;
  /** 0 for cloud, K for split, L for local. */
  split: number;
  /** Most draft tokens per round trip (0 = no self-speculation). */
  maxDraft: number;
  /** Draft while the early-exit top-1 probability is at least this (when `maxDraft` > 0). */
  draftTop1?: number;
  /** Stream drafts (wire 1.1) with at most this many rows in flight, instead of `maxDraft`. */
  streamed?: { maxInFlight: number };
  /**
   * `tokens`: send the prompt as token ids (wire 1.2); `whole`: as rows in one frame, not
   * pipelined; absent: as rows, pipelined where the wire asks.
   */
  prefill?: "tokens" | "whole";
  /** Human-readable reason, for logs and audits. */
  reason: string;
  /** Name of the policy that decided. */
  policy: string;
  /** The prediction for the chosen route. */
  predicted: Prediction;
  /** The prediction for all-cloud, the reference. */
  baseline: Prediction;
}

/** What to do with one decoding step's early-exit token. */
export type StepAction =
  /** Emit the early-exit token without asking the edge. */
  | "local"
  /** Add it as a draft to the frame being built. */
  | "draft"
  /** Stop drafting and send the frame. */
  | "send";

/** A pluggable routing policy. */
export interface Policy {
  /** Short name, recorded in every decision. */
  readonly name: string;
  /** Per query: local, split at K, or cloud. */
  decide(input: RouterInput): Decision;
  /** Per decoding step: keep, draft or send the early-exit token (`drafted` so far). */
  step(confidence: Confidence, drafted: number): StepAction;
  /** Per step under a decision (its `maxDraft` and `draftTop1`); without it, `step`. */
  stepFor?(decision: Decision): Pick<Policy, "step">;
}
