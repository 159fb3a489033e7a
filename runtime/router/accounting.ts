/**
 * Per-request cost and latency accounting: FLOPs on each side, bytes each way, round trips,
 * drafts proposed and accepted, time to first token and tokens per second. A
 * {@linkcode MetricsRecorder} is fed as the request runs; `finish()` gives the caller a
 * plain {@linkcode RequestMetrics} object to log or aggregate.
 *
 * @example
 * ```ts
 * import { MetricsRecorder } from "./accounting.ts";
 * const rec = new MetricsRecorder({ route: "split", split: 3, promptTokens: 5 });
 * rec.roundTrip({ bytesUp: 1000, bytesDown: 80, rows: 5 });
 * rec.flops(1e6, 5e5);
 * rec.tokens(1);
 * console.log(rec.finish().edgeFlops); // 500000
 * ```
 *
 * @module
 */

import type { Route } from "./types.ts";

/** What one request cost and how fast it was. */
export interface RequestMetrics {
  /** Where it ran. */
  route: Route;
  /** Split layer (0 cloud, L local). */
  split: number;
  /** Prompt tokens. */
  promptTokens: number;
  /** Tokens produced. */
  tokens: number;
  /** Tokens emitted from the early-exit head without the edge. */
  localTokens: number;
  /** FLOPs on the device. */
  deviceFlops: number;
  /** FLOPs on the edge. */
  edgeFlops: number;
  /** Edge share of all FLOPs run. */
  edgeShare: number;
  /** Bytes device → edge. */
  bytesUp: number;
  /** Bytes edge → device. */
  bytesDown: number;
  /** Requests to the edge. */
  roundTrips: number;
  /** Rows the edge ran. */
  edgeRows: number;
  /** Draft tokens proposed to the edge. */
  drafted: number;
  /** Draft tokens the edge accepted. */
  accepted: number;
  /**
   * Decode tokens per round trip waited for (0 when none): per request when each waits for
   * the last; with draft streaming, per request sent with none of the stream's live rows in
   * flight (one per mismatch), since the others overlap them. `roundTrips` counts every request.
   */
  tokensPerRoundTrip: number;
  /** Time to first token, ms. */
  ttftMs: number;
  /** Time to the last token, ms. */
  totalMs: number;
  /** Tokens per second after the first (0 with fewer than two tokens). */
  tokensPerSec: number;
}

/** What a round trip moved. */
export interface RoundTripSample {
  /** Bytes sent. */
  bytesUp: number;
  /** Bytes received. */
  bytesDown: number;
  /** Rows the edge ran. */
  rows?: number;
  /** Drafts in the frame. */
  drafted?: number;
  /** Drafts the edge accepted. */
  accepted?: number;
  /** Tokens this round trip answered. */
  answered?: number;
  /** Requests it took (default 1; more with prompt chunks, retries or replays). */
  count?: number;
  /**
   * It overlapped requests the run was already waiting on (draft streaming: rows sent while
   * others were in flight), so it adds no round trip of waiting: its tokens count toward
   * `tokensPerRoundTrip`, the trip does not.
   */
  overlapped?: boolean;
}

/** Accumulates one request's metrics. */
export class MetricsRecorder {
  readonly #m: RequestMetrics;
  readonly #now: () => number;
  readonly #t0: number;
  #first?: number;
  #last?: number;
  #decodeTrips = 0;
  #decodeTokens = 0;

  /** Starts the clock (`now` defaults to `performance.now`). */
  constructor(
    head: { route: Route; split: number; promptTokens: number },
    now: () => number = () => performance.now(),
  ) {
    this.#now = now;
    this.#t0 = now();
    this.#m = {
      ...head,
      tokens: 0,
      localTokens: 0,
      deviceFlops: 0,
      edgeFlops: 0,
      edgeShare: 0,
      bytesUp: 0,
      bytesDown: 0,
      roundTrips: 0,
      edgeRows: 0,
      drafted: 0,
      accepted: 0,
      tokensPerRoundTrip: 0,
      ttftMs: 0,
      totalMs: 0,
      tokensPerSec: 0,
    };
  }

  /** Adds FLOPs run on the device and on the edge. */
  flops(device: number, edge = 0): void {
    this.#m.deviceFlops += device;
    this.#m.edgeFlops += edge;
  }

  /** Records one request to the edge. */
  roundTrip(s: RoundTripSample): void {
    const m = this.#m;
    m.roundTrips += s.count ?? 1;
    m.bytesUp += s.bytesUp;
    m.bytesDown += s.bytesDown;
    m.edgeRows += s.rows ?? 0;
    m.drafted += s.drafted ?? 0;
    m.accepted += s.accepted ?? 0;
    if (this.#first !== undefined) {
      if (!s.overlapped) this.#decodeTrips++;
      this.#decodeTokens += s.answered ?? 0;
    }
  }

  /** Records `n` tokens delivered to the caller (`local`: from the early-exit head). */
  tokens(n: number, local = false): void {
    if (n <= 0) return;
    const t = this.#now();
    this.#first ??= t;
    this.#last = t;
    this.#m.tokens += n;
    if (local) this.#m.localTokens += n;
  }

  /** The metrics so far (call at the end of the request). */
  finish(): RequestMetrics {
    const m = { ...this.#m };
    const end = this.#last ?? this.#now();
    m.ttftMs = (this.#first ?? end) - this.#t0;
    m.totalMs = end - this.#t0;
    const total = m.deviceFlops + m.edgeFlops;
    m.edgeShare = total > 0 ? m.edgeFlops / total : 0;
    m.tokensPerRoundTrip = this.#decodeTrips > 0 ? this.#decodeTokens / this.#decodeTrips : 0;
    const decodeMs = end - (this.#first ?? end);
    m.tokensPerSec = m.tokens > 1 && decodeMs > 0 ? 1000 * (m.tokens - 1) / decodeMs : 0;
    return m;
  }
}
