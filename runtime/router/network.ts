/**
 * Estimating the network from real requests: smoothed round-trip time and its mean deviation
 * (Jacobson/Karels, as TCP does, RFC 6298) and up/down bandwidth (EWMA of samples from
 * transfers large enough to measure).
 *
 * Each observed request says how long it took end to end, how many bytes went each way and how
 * long the server computed. The model is `wall = rtt + up/upBw + down/downBw + server`: small
 * requests update the RTT, large ones the bandwidth (with the current RTT subtracted).
 *
 * @example
 * ```ts
 * import { NetworkEstimator } from "./network.ts";
 * const net = new NetworkEstimator();
 * net.observe({ wallMs: 52, bytesUp: 200, bytesDown: 100, serverMs: 2 });
 * console.log(net.state.rttMs.toFixed(0));
 * ```
 *
 * @module
 */

import type { NetworkState } from "./types.ts";

/** One request as the device saw it. */
export interface RequestSample {
  /** Wall time from sending the first byte to reading the last, ms. */
  wallMs: number;
  /** Bytes sent. */
  bytesUp: number;
  /** Bytes received. */
  bytesDown: number;
  /** Time the server reports computing, ms (subtracted). */
  serverMs?: number;
}

/** Settings of a {@linkcode NetworkEstimator}. */
export interface EstimatorOptions {
  /** Prior before any sample (default: 50 ms RTT, 1 MB/s each way). */
  prior?: Partial<NetworkState>;
  /** EWMA weight of a new RTT sample (default 1/8, as RFC 6298). */
  alpha?: number;
  /** EWMA weight of a new deviation sample (default 1/4, as RFC 6298). */
  beta?: number;
  /** EWMA weight of a new bandwidth sample (default 1/4). */
  gamma?: number;
  /** A transfer counts as a bandwidth sample when it takes at least this share of the
   * request's wall time at the current estimate (default 0.3). */
  bandwidthShare?: number;
}

/** Smoothed RTT and bandwidth from observed requests. */
export class NetworkEstimator {
  /** Requests observed. */
  samples = 0;
  #s: NetworkState;
  readonly #o: Required<Omit<EstimatorOptions, "prior">>;

  /** Creates an estimator starting from `prior`. */
  constructor(options: EstimatorOptions = {}) {
    this.#s = {
      rttMs: 50,
      rttVarMs: 25,
      upBytesPerSec: 1e6,
      downBytesPerSec: 1e6,
      ...options.prior,
    };
    this.#o = { alpha: 1 / 8, beta: 1 / 4, gamma: 1 / 4, bandwidthShare: 0.3, ...options };
  }

  /** The current estimate (a copy). */
  get state(): NetworkState {
    return { ...this.#s };
  }

  /** Predicted wall time of a request, ms (without server time). */
  predictMs(bytesUp: number, bytesDown: number): number {
    const s = this.#s;
    return s.rttMs + 1000 * (bytesUp / s.upBytesPerSec + bytesDown / s.downBytesPerSec);
  }

  /** Folds one request into the estimate. Ignores samples with non-finite or negative times. */
  observe(sample: RequestSample): void {
    const net = sample.wallMs - (sample.serverMs ?? 0);
    if (!(Number.isFinite(net) && net >= 0)) return;
    const s = this.#s;
    const { alpha, beta, gamma, bandwidthShare } = this.#o;
    const upMs = 1000 * sample.bytesUp / s.upBytesPerSec;
    const downMs = 1000 * sample.bytesDown / s.downBytesPerSec;
    const first = this.samples === 0;
    this.samples++;
    // Bandwidth: the direction that dominates a large transfer gets the sample.
    const transferMs = net - s.rttMs;
    if (upMs >= bandwidthShare * net && transferMs > 0 && sample.bytesUp > 0) {
      const bw = 1000 * sample.bytesUp / Math.max(transferMs - downMs, 1e-3);
      s.upBytesPerSec += gamma * (bw - s.upBytesPerSec);
      return;
    }
    if (downMs >= bandwidthShare * net && transferMs > 0 && sample.bytesDown > 0) {
      const bw = 1000 * sample.bytesDown / Math.max(transferMs - upMs, 1e-3);
      s.downBytesPerSec += gamma * (bw - s.downBytesPerSec);
      return;
    }
    // RTT: what is left once the (small) transfers are subtracted.
    const rtt = Math.max(0, net - upMs - downMs);
    if (first) {
      s.rttMs = rtt;
      s.rttVarMs = rtt / 2;
      return;
    }
    s.rttVarMs += beta * (Math.abs(s.rttMs - rtt) - s.rttVarMs);
    s.rttMs += alpha * (rtt - s.rttMs);
  }
}
