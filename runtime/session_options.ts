/**
 * The options and running totals of a split session (`session.ts`): what a caller passes to
 * `createSession`, what `SplitSession.stats` counts, and the options of `generate`.
 *
 * @example
 * ```ts
 * import { newSessionStats, type SessionOptions } from "./session_options.ts";
 * const o: SessionOptions = { modelId: "stories260K", split: 2, edge: "http://127.0.0.1:8787" };
 * console.log(o.split, newSessionStats().roundTrips); // 2 0
 * ```
 *
 * @module
 */

import type { Engine } from "./engine.ts";
import type { Model } from "./model.ts";
import type { SamplerOptions } from "./sampling.ts";
import type { WireDtype } from "./wire.ts";
import type { Reply } from "./wire_reply.ts";

/** Options of `createSession`. */
export interface SessionOptions {
  /** The device engine (must hold the embedding and layers [0, K)); or give `model`. */
  engine?: Engine;
  /** A model or device shard to run with the reference engine (when no `engine`). */
  model?: Model;
  /** Model id the edge knows. */
  modelId: string;
  /** Weights digest of the whole model; computed when `model` is whole, required otherwise. */
  modelDigest?: string;
  /** Split layer K: the device runs [0, K), the edge [K, L). */
  split: number;
  /** Edge base URL. */
  edge: string | URL;
  /** Payload encoding on the wire (default "f32"). */
  wire?: WireDtype;
  /**
   * Payload encoding of prompt rows (steps of more than one token without drafts); default
   * `wire`. Decode rows (one token, or drafts) use `wire`: e.g. `f16` prompts, `f32` decode.
   */
  prefillWire?: WireDtype;
  /**
   * Rows per chunk of a pipelined prompt (default 0 = off): the prompt frame is streamed and
   * chunk i+1 runs through [0, K) while chunk i is sent (`pipelined_frame.ts`). Needs an `f32`
   * or `f16` prefill wire and a prompt of more than one chunk that fits in one frame.
   */
  pipelineRows?: number;
  /** Sampling on the edge (default greedy). */
  sampling?: SamplerOptions;
  /** Top-k logprobs to ask for per token (default 0). */
  topK?: number;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** How many times one step may rebuild a lost edge session (default 3). */
  maxRecoveries?: number;
  /** How many times a request without an answer is retried (default 2). */
  retries?: number;
  /** The edge's API key (sent as a bearer token). */
  apiKey?: string;
  /** Milliseconds one request may take before it counts as lost (default 30000; 0 = none). */
  timeoutMs?: number;
  /**
   * First retry delay in milliseconds, doubled at each retry (default 20). A 429 waits what
   * the edge's Retry-After says instead.
   */
  retryDelayMs?: number;
}

/** Running totals of a session. */
export interface SessionStats {
  /** Tokens answered by the edge. */
  tokens: number;
  /** Frames sent (including replays and retries). */
  roundTrips: number;
  /** Frame bytes sent. */
  bytesSent: number;
  /** Answer bytes received. */
  bytesReceived: number;
  /** Milliseconds spent in the device's layers. */
  deviceMs: number;
  /** Milliseconds the edge reported computing. */
  edgeMs: number;
  /** Milliseconds waiting for the edge (network + edge compute). */
  waitMs: number;
  /** Edge sessions rebuilt by replay. */
  recoveries: number;
  /** Rows replayed to rebuild them. */
  replayedRows: number;
  /** FLOPs run on the device. */
  deviceFlops: number;
  /** FLOPs run on the edge (including replays). */
  edgeFlops: number;
}

/** Options of `SplitSession.generate`. */
export interface SplitGenerateOptions {
  /** Most tokens to produce (default 256; clipped to the context). */
  maxTokens?: number;
  /** Stop at EOS/BOS (default true); the stop token is not yielded. */
  stopAtEos?: boolean;
}

/**
 * Zeroed running totals.
 *
 * @example
 * ```ts
 * import { newSessionStats } from "./session_options.ts";
 * console.log(newSessionStats().bytesSent); // 0
 * ```
 */
export function newSessionStats(): SessionStats {
  return {
    tokens: 0,
    roundTrips: 0,
    bytesSent: 0,
    bytesReceived: 0,
    deviceMs: 0,
    edgeMs: 0,
    waitMs: 0,
    recoveries: 0,
    replayedRows: 0,
    deviceFlops: 0,
    edgeFlops: 0,
  };
}

/** What draft streaming needs of a `SplitSession`: see `draft_stream.ts`. */
export interface StreamPort {
  /** The edge's draft streaming limits (absent: it cannot stream). */
  stream(): { maxHeld: number; holdMs: number } | undefined;
  /** Runs `token` at `pos` through [0, K) (a decode row, stored); returns its row [dim]. */
  run(token: number, pos: number): Float32Array;
  /** Sends the stored row at `pos` with its token as a stream frame. */
  post(pos: number, token: number): Promise<Reply>;
  /**
   * After the edge lost the session: rebuilds it by replaying [0, pos), then sends the stored
   * row at `pos` as a plain frame; answers the token for `pos + 1`.
   */
  resend(pos: number): Promise<Reply>;
  /** Records that both sides now hold `n` positions. */
  held(n: number): void;
}
