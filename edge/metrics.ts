/**
 * The edge's cost accounting as Prometheus metrics (`GET /metrics`, text format 0.0.4):
 * frames, rows and FLOPs run per model and split (split 0: whole-model generations on the chat
 * and token-id routes), draft tokens proposed and accepted, tokens answered, bytes in and out,
 * compute time (frames and generations: what a device's router reads as the edge's load and
 * speed, `runtime/edge_monitor.ts`), and gauges for sessions and KV bytes.
 *
 * | metric                                  | type    | labels              |
 * | --------------------------------------- | ------- | ------------------- |
 * | `tandem_edge_frames_total`              | counter | model, split, kind (`decode`, `draft`, `prefill`, `stream`, `stale`, `retry`) |
 * | `tandem_edge_rows_total`                | counter | model, split        |
 * | `tandem_edge_flops_total`               | counter | model, split        |
 * | `tandem_edge_draft_tokens_total`        | counter | model, split        |
 * | `tandem_edge_draft_accepted_total`      | counter | model, split        |
 * | `tandem_edge_tokens_total`              | counter | model, split        |
 * | `tandem_edge_bytes_received_total`      | counter | model               |
 * | `tandem_edge_bytes_sent_total`          | counter | model               |
 * | `tandem_edge_compute_seconds_total`     | counter | model               |
 * | `tandem_edge_generations_total`         | counter | model, route (`chat`, `generate`) |
 * | `tandem_edge_sessions`                  | gauge   | —                   |
 * | `tandem_edge_kv_bytes`                  | gauge   | —                   |
 * | `tandem_edge_price_per_flop`            | gauge   | — (when the edge advertises a price) |
 *
 * @example
 * ```ts
 * import { EdgeMetrics } from "./metrics.ts";
 * const metrics = new EdgeMetrics();
 * console.log(metrics.format({ sessions: 0, kvBytes: 0 }).includes("tandem_edge_sessions 0"));
 * ```
 *
 * @module
 */

import type { Hono } from "hono";
import { generationFlops, rowsFlops } from "../runtime/cost.ts";
import { headFlops, type ModelConfig } from "../runtime/model.ts";
import { MetricRegistry } from "../runtime/router/prometheus.ts";
import {
  FLAG_EMBED,
  FLAG_NO_REPLY,
  FLAG_STREAM,
  FLAG_TOKENS,
  type Frame,
  frameLength,
} from "../runtime/wire.ts";
import type { EdgeSession } from "./split_forward.ts";

/** Counters of one edge. */
export class EdgeMetrics {
  /** The registry behind `format()`. */
  readonly registry: MetricRegistry = new MetricRegistry();
  readonly #r = this.registry;
  readonly #frames = this.#r.counter("tandem_edge_frames_total", "Frames received, by kind.");
  readonly #rows = this.#r.counter(
    "tandem_edge_rows_total",
    "Boundary rows run through the edge's layers.",
  );
  readonly #flops = this.#r.counter(
    "tandem_edge_flops_total",
    "FLOPs run by the edge (layers [K, L) and head; [0, L) for token prefill).",
  );
  readonly #drafts = this.#r.counter(
    "tandem_edge_draft_tokens_total",
    "Draft tokens proposed by devices.",
  );
  readonly #accepted = this.#r.counter(
    "tandem_edge_draft_accepted_total",
    "Draft tokens the edge accepted.",
  );
  readonly #tokens = this.#r.counter("tandem_edge_tokens_total", "Tokens answered.");
  readonly #bytesIn = this.#r.counter("tandem_edge_bytes_received_total", "Frame bytes received.");
  readonly #bytesOut = this.#r.counter("tandem_edge_bytes_sent_total", "Answer bytes sent.");
  readonly #seconds = this.#r.counter(
    "tandem_edge_compute_seconds_total",
    "Seconds spent computing frames.",
  );
  readonly #generations = this.#r.counter(
    "tandem_edge_generations_total",
    "Whole-model generations (chat and token-id routes).",
  );
  readonly #sessions = this.#r.gauge("tandem_edge_sessions", "Split sessions held.");
  readonly #kv = this.#r.gauge("tandem_edge_kv_bytes", "KV-cache bytes held by all sessions.");
  #price?: ReturnType<MetricRegistry["gauge"]>;

  /**
   * Accounts one frame run on `session`: `seqBefore` is the session's expected sequence
   * number before the frame (unchanged after it means an idempotent retry: nothing ran).
   */
  frame(
    session: EdgeSession,
    f: Frame,
    frameBytes: number,
    answer: string,
    seqBefore: number,
    ms: number,
  ): void {
    const model = session.model.id;
    const labels = { model, split: String(session.split) };
    const flags = f.flags ?? 0;
    const n = frameLength(f);
    this.#bytesIn.inc({ model }, frameBytes);
    this.#bytesOut.inc({ model }, answer.length);
    if (session.nextSeq === seqBefore) {
      this.#frames.inc({ ...labels, kind: "retry" });
      return;
    }
    const done = JSON.parse(answer.slice(answer.lastIndexOf("\n", answer.length - 2) + 1));
    if (flags & FLAG_STREAM) {
      // A draft stream row: computed (one row, one head, one token) or stale (nothing run).
      this.#frames.inc({ ...labels, kind: done.stale ? "stale" : "stream" });
      if (done.stale) return;
      const c = session.model.config;
      this.#rows.inc(labels, 1);
      this.#flops.inc(labels, rowsFlops(c, c.nLayers - session.split, f.pos, 1) + headFlops(c));
      this.#tokens.inc(labels, 1);
      this.#seconds.inc({ model }, ms / 1000);
      return;
    }
    const drafting = (flags & FLAG_TOKENS) !== 0 && (flags & FLAG_NO_REPLY) === 0;
    const kind = flags & FLAG_NO_REPLY
      ? "prefill"
      : drafting
      ? "draft"
      : n > 1
      ? "prefill"
      : "decode";
    this.#frames.inc({ ...labels, kind });
    this.#rows.inc(labels, n);
    const c = session.model.config;
    const heads = flags & FLAG_NO_REPLY ? 0 : drafting ? n : 1;
    // Token prefill (EMBED) runs the whole model: [0, K) as well as [K, L).
    const layers = flags & FLAG_EMBED ? c.nLayers : c.nLayers - session.split;
    this.#flops.inc(labels, rowsFlops(c, layers, f.pos, n) + heads * headFlops(c));
    if (drafting) {
      this.#drafts.inc(labels, n - 1);
      this.#accepted.inc(labels, done.accepted ?? 0);
    }
    this.#tokens.inc(labels, flags & FLAG_NO_REPLY ? 0 : drafting ? (done.accepted ?? 0) + 1 : 1);
    this.#seconds.inc({ model }, ms / 1000);
  }

  /**
   * Accounts one generation on the chat or token-id route: the whole model ran the prompt and
   * each token (as all-cloud is counted everywhere: prompt + produced − 1 rows, a head a token),
   * in `ms` of compute.
   */
  generation(
    model: { id: string; config: ModelConfig },
    route: "chat" | "generate",
    promptTokens: number,
    produced: number,
    ms: number,
  ): void {
    const c = model.config;
    const labels = { model: model.id, split: "0" };
    this.#generations.inc({ model: model.id, route });
    this.#flops.inc(labels, generationFlops(c, promptTokens, produced));
    this.#tokens.inc(labels, produced);
    this.#seconds.inc({ model: model.id }, ms / 1000);
  }

  /** The exposition text, with the gauges set from `state`. */
  format(state: { sessions: number; kvBytes: number; pricePerFlop?: number }): string {
    this.#sessions.set({}, state.sessions);
    this.#kv.set({}, state.kvBytes);
    if (state.pricePerFlop !== undefined) {
      this.#price ??= this.#r.gauge(
        "tandem_edge_price_per_flop",
        "The price this edge advertises for one FLOP.",
      );
      this.#price.set({}, state.pricePerFlop);
    }
    return this.#r.format();
  }
}

/**
 * Adds `GET /metrics` to an edge app.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { EdgeMetrics, registerMetrics } from "./metrics.ts";
 * const app = new Hono();
 * registerMetrics(app, new EdgeMetrics(), () => ({ sessions: 0, kvBytes: 0 }));
 * const res = await app.request("/metrics");
 * console.log(res.headers.get("content-type")); // text/plain; version=0.0.4; charset=utf-8
 * ```
 */
export function registerMetrics(
  app: Hono,
  metrics: EdgeMetrics,
  state: () => { sessions: number; kvBytes: number; pricePerFlop?: number },
): void {
  app.get("/metrics", () =>
    new Response(metrics.format(state()), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    }));
}

/** Where a generation route reports what it ran ({@linkcode EdgeMetrics.generation}). */
export type GenerationAccount = EdgeMetrics["generation"];

/**
 * Times a token generator's steps: `ms` sums the time spent inside `next()` (the compute, not
 * the waits for the client between tokens), `tokens` counts the tokens it gave.
 *
 * @example
 * ```ts
 * import { StepTimer } from "./metrics.ts";
 * const timer = new StepTimer();
 * for (const _ of timer.wrap([1, 2, 3].values())) {}
 * console.log(timer.tokens); // 3
 * ```
 */
export class StepTimer {
  /** Compute time so far, ms. */
  ms = 0;
  /** Tokens given so far. */
  tokens = 0;

  /** `tokens`, timed. */
  wrap(tokens: Iterator<number>): IterableIterator<number> {
    const next = (): IteratorResult<number> => {
      const t0 = performance.now();
      try {
        const r = tokens.next();
        if (!r.done) this.tokens++;
        return r;
      } finally {
        this.ms += performance.now() - t0;
      }
    };
    const it: IterableIterator<number> = { next, [Symbol.iterator]: () => it };
    return it;
  }
}
