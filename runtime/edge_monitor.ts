/**
 * The edge's state as the router sees it, read from the edge itself: `GET /metrics`
 * (Prometheus text, `edge/metrics.ts`) sampled over time. Between two samples,
 *
 * ```text
 * load        = Δ tandem_edge_compute_seconds_total / Δ wall time      (clipped to 0..0.95)
 * flopsPerSec = Δ tandem_edge_flops_total / Δ tandem_edge_compute_seconds_total
 * ```
 *
 * summed over the edge's models: how busy its compute was, and how fast it ran what it ran
 * (frames of split sessions and whole-model generations alike); and `pricePerFlop` from
 * `tandem_edge_price_per_flop` where the edge advertises one. Until two samples span some
 * compute the monitor claims nothing and the caller's own `edgeState` stands. A failed read
 * keeps the last state and is reported in `error`: the monitor never throws.
 *
 * @example
 * ```ts
 * import { EdgeMonitor } from "./edge_monitor.ts";
 * import { routedGenerate } from "./routed.ts";
 * import type { Engine } from "./engine.ts";
 * declare const device: Engine;
 * const monitor = new EdgeMonitor("https://edge.example", { apiKey: "…" });
 * await monitor.refresh(); // e.g. when the app starts, then before queries
 * const run = routedGenerate(device, [1, 2, 3], {
 *   edge: "https://edge.example", modelId: "m", modelDigest: "…", edgeMonitor: monitor,
 * });
 * ```
 *
 * @module
 */

import { parsePrometheus } from "./router/prometheus.ts";
import type { EdgeState } from "./router/types.ts";

/** Options of {@linkcode EdgeMonitor}. */
export interface EdgeMonitorOptions {
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
  /** The edge's API key (`/metrics` needs one where the edge has keys). */
  apiKey?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** A refresh sooner than this after the last read does nothing (default 1000 ms). */
  minIntervalMs?: number;
  /** Seconds of edge compute two samples must span before a rate is derived (default 0.01). */
  minComputeSeconds?: number;
  /** How long a read may take (default 2000 ms). */
  timeoutMs?: number;
  /** Clock, ms (default `performance.now`). */
  now?: () => number;
}

interface Sample {
  at: number;
  seconds: number;
  flops: number;
  price?: number;
}

/** Samples an edge's `/metrics` and derives its load and speed. */
export class EdgeMonitor {
  /** What the samples say (empty until two span some compute). */
  state: Partial<EdgeState> = {};
  /** The last read's failure, if it failed. */
  error?: string;
  readonly #url: string;
  readonly #o: EdgeMonitorOptions;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  #last?: Sample;
  #reading?: Promise<Partial<EdgeState>>;

  /** A monitor of the edge at `edge` (its base URL). */
  constructor(edge: string, options: EdgeMonitorOptions = {}) {
    this.#url = `${String(edge).replace(/\/+$/, "")}/metrics`;
    this.#o = options;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Reads `/metrics` unless the last read is more recent than `minIntervalMs`, and returns the
   * state. Concurrent calls share one read.
   */
  refresh(): Promise<Partial<EdgeState>> {
    const last = this.#last;
    if (last && this.#now() - last.at < (this.#o.minIntervalMs ?? 1000)) {
      return Promise.resolve(this.state);
    }
    this.#reading ??= this.#read().finally(() => (this.#reading = undefined));
    return this.#reading;
  }

  async #read(): Promise<Partial<EdgeState>> {
    const headers: Record<string, string> = { ...this.#o.headers };
    if (this.#o.apiKey) headers.authorization = `Bearer ${this.#o.apiKey}`;
    let text: string;
    try {
      const res = await this.#fetch(this.#url, {
        headers,
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 2000),
      });
      text = await res.text();
      if (!res.ok) throw new Error(`the edge answered ${res.status}`);
    } catch (e) {
      this.error = `Cannot read the edge's metrics: ${(e as Error)?.message ?? e}`;
      return this.state;
    }
    const sample = sampleOf(text, this.#now());
    this.error = undefined;
    if (sample.price !== undefined) this.state = { ...this.state, pricePerFlop: sample.price };
    const prev = this.#last;
    // A restarted edge starts its counters again: a fresh baseline, no derived rate.
    if (!prev || sample.seconds < prev.seconds || sample.flops < prev.flops) {
      this.#last = sample;
      return this.state;
    }
    const busy = sample.seconds - prev.seconds;
    const wall = (sample.at - prev.at) / 1000;
    if (busy < (this.#o.minComputeSeconds ?? 0.01) || wall <= 0) {
      // Too little compute to time: an idle edge, if the interval was long enough to tell.
      if (wall >= 1) {
        this.state = { ...this.state, load: 0 };
        this.#last = sample;
      }
      return this.state;
    }
    this.state = {
      ...this.state,
      flopsPerSec: (sample.flops - prev.flops) / busy,
      load: Math.min(0.95, Math.max(0, busy / wall)),
    };
    this.#last = sample;
    return this.state;
  }
}

/** The counters the monitor needs, summed over the edge's models. */
function sampleOf(text: string, at: number): Sample {
  let seconds = 0, flops = 0, price: number | undefined;
  for (const s of parsePrometheus(text)) {
    if (s.name === "tandem_edge_compute_seconds_total") seconds += s.value;
    else if (s.name === "tandem_edge_flops_total") flops += s.value;
    else if (s.name === "tandem_edge_price_per_flop" && s.value >= 0) price = s.value;
  }
  return { at, seconds, flops, price };
}
