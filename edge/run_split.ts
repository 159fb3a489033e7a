/**
 * One split generation from start to finish, for command lines (`deno task generate --split K
 * [--edge URL] [--wire f32|f16|int8]`, `deno task demo`): runs layers [0, K) here, the rest on
 * an edge — the one at `edge`, or, without it, one started on loopback for the run — streams
 * the text, and reports what crossed the wire and where the FLOPs ran.
 *
 * Deno only (the loopback edge uses `hosts/deno.ts`).
 *
 * @example
 * ```ts
 * import { formatSplitReport, runSplitGeneration } from "./run_split.ts";
 * import type { Model } from "../runtime/model.ts";
 * import type { Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
 * declare const model: Model; declare const tokenizer: Tokenizer;
 * const report = await runSplitGeneration({ model, tokenizer, prompt: "Once upon a time",
 *   split: 2, wire: "int8", maxTokens: 100, onText: (t) => console.log(t) });
 * console.log(formatSplitReport(report));
 * ```
 *
 * @module
 */

import { digestModel } from "../runtime/digest.ts";
import type { Engine } from "../runtime/engine.ts";
import { TandemError } from "../runtime/errors.ts";
import type { Model } from "../runtime/model.ts";
import type { SamplerOptions } from "../runtime/sampling.ts";
import { createSession, type SessionStats } from "../runtime/session.ts";
import { StreamDecoder, type Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
import type { WireDtype } from "../runtime/wire.ts";
import { createEdgeApp } from "./app.ts";
import { serveEdge } from "./hosts/deno.ts";
import type { EngineFactory } from "./models.ts";

/** Options of {@linkcode runSplitGeneration}. */
export interface SplitRunOptions {
  /** The model on the device: whole, or a device shard with `modelDigest`. */
  model: Model;
  /** Its tokenizer. */
  tokenizer: Tokenizer;
  /** Prompt text (BOS is prepended) or token ids. */
  prompt: string | number[];
  /** Split layer K. */
  split: number;
  /** Edge URL; without it an edge holding `model` is started on loopback for the run. */
  edge?: string;
  /** Model id on the edge (default: looked up on the edge by digest; "model" on loopback). */
  modelId?: string;
  /** Weights digest of the whole model (needed when `model` is a shard). */
  modelDigest?: string;
  /** Payload encoding on the wire (default "f32"). */
  wire?: WireDtype;
  /** Most tokens to generate (default 256). */
  maxTokens?: number;
  /** Sampling on the edge (default greedy). */
  sampling?: SamplerOptions;
  /** Device engine (default: the reference engine on `model`). */
  engine?: Engine;
  /** Engine factory of the loopback edge (default: the reference engine). */
  edgeEngine?: EngineFactory;
  /** Called with each piece of text as it is decoded. */
  onText?: (piece: string) => void;
}

/** What a split generation did. */
export interface SplitReport {
  /** Generated token ids. */
  tokens: number[];
  /** Generated text. */
  text: string;
  /** Split layer K and the model's layer count. */
  split: number;
  /** Layers of the whole model. */
  nLayers: number;
  /** Payload encoding used. */
  wire: WireDtype;
  /** Edge URL used. */
  edge: string;
  /** The session's totals. */
  stats: SessionStats;
  /** Fraction of all FLOPs that ran on the edge. */
  cloudFlopsShare: number;
  /** Wall time of the whole generation (ms). */
  totalMs: number;
}

async function findModelId(edge: string, digest: string): Promise<string> {
  const res = await fetch(`${edge.replace(/\/+$/, "")}/v1/models`);
  if (!res.ok) {
    throw new TandemError(
      "network",
      `Cannot list the edge's models at ${edge}: HTTP ${res.status}`,
    );
  }
  const { data } = await res.json() as { data: { id: string; digest: string }[] };
  const match = data.find((m) => m.digest === digest);
  if (!match) {
    throw new TandemError(
      "model_mismatch",
      `The edge at ${edge} serves no model with this device's weights digest ${
        digest.slice(0, 16)
      }… (it serves ${data.map((m) => m.id).join(", ") || "nothing"})`,
    );
  }
  return match.id;
}

/**
 * Runs a split generation and reports on it. Starts and stops a loopback edge when no
 * `edge` is given.
 *
 * @example
 * ```ts
 * import { runSplitGeneration } from "./run_split.ts";
 * import type { Model } from "../runtime/model.ts";
 * import type { Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
 * declare const model: Model; declare const tokenizer: Tokenizer;
 * const r = await runSplitGeneration({ model, tokenizer, prompt: [1], split: 3, edge: "http://127.0.0.1:8787" });
 * console.log(r.stats.bytesSent / r.tokens.length);
 * ```
 */
export async function runSplitGeneration(o: SplitRunOptions): Promise<SplitReport> {
  const digest = o.modelDigest ?? (await digestModel(o.model)).modelDigest;
  if (!digest) {
    throw new TandemError(
      "bad_argument",
      "Cannot run a split: a device shard needs its modelDigest",
    );
  }
  const local = o.edge ? undefined : await createEdgeApp({
    models: [{ id: o.modelId ?? "model", model: o.model, digest }],
    engine: o.edgeEngine,
  });
  const server = local ? serveEdge(local.fetch) : undefined;
  const edge = o.edge ?? server!.url;
  const t0 = performance.now();
  try {
    const modelId = o.modelId ?? (local ? "model" : await findModelId(edge, digest));
    const wire = o.wire ?? "f32";
    const session = await createSession({
      model: o.model,
      engine: o.engine,
      modelId,
      modelDigest: digest,
      split: o.split,
      edge,
      wire,
      sampling: o.sampling,
    });
    const prompt = typeof o.prompt === "string"
      ? o.tokenizer.encode(o.prompt, { bos: true })
      : o.prompt;
    const decoder = new StreamDecoder(o.tokenizer, prompt);
    const tokens: number[] = [];
    let text = "";
    try {
      for await (const t of session.generate(prompt, { maxTokens: o.maxTokens ?? 256 })) {
        tokens.push(t);
        const piece = decoder.push(t);
        text += piece;
        if (piece) o.onText?.(piece);
      }
      const tail = decoder.flush();
      text += tail;
      if (tail) o.onText?.(tail);
    } finally {
      await session.close();
    }
    const { deviceFlops, edgeFlops } = session.stats;
    return {
      tokens,
      text,
      split: o.split,
      nLayers: o.model.config.nLayers,
      wire,
      edge,
      stats: { ...session.stats },
      cloudFlopsShare: edgeFlops / (deviceFlops + edgeFlops || 1),
      totalMs: performance.now() - t0,
    };
  } finally {
    await server?.close();
    local?.dispose();
  }
}

/**
 * A short human-readable report.
 *
 * @example
 * ```ts
 * import { formatSplitReport, type SplitReport } from "./run_split.ts";
 * declare const r: SplitReport;
 * console.log(formatSplitReport(r));
 * ```
 */
export function formatSplitReport(r: SplitReport): string {
  const s = r.stats;
  const n = Math.max(1, r.tokens.length);
  const f = (x: number, d = 1) => x.toFixed(d);
  return [
    `tokens            ${r.tokens.length} in ${f(r.totalMs, 0)} ms (${
      f((1000 * r.tokens.length) / r.totalMs)
    } tok/s)`,
    `split             device layers [0, ${r.split}) + embed; edge layers [${r.split}, ${r.nLayers}) + head; wire ${r.wire}; edge ${r.edge}`,
    `bytes per token   sent ${f(s.bytesSent / n)}  received ${
      f(s.bytesReceived / n)
    }  (${s.roundTrips} round trips)`,
    `time              device ${f(s.deviceMs)} ms  edge ${f(s.edgeMs)} ms  waiting on the edge ${
      f(s.waitMs)
    } ms`,
    `cloud FLOPs share ${f(100 * r.cloudFlopsShare)}% (device ${
      (s.deviceFlops / 1e6).toFixed(2)
    } MFLOP, edge ${(s.edgeFlops / 1e6).toFixed(2)} MFLOP)`,
    ...(s.recoveries
      ? [`recoveries        ${s.recoveries} (${s.replayedRows} rows replayed)`]
      : []),
  ].join("\n");
}
