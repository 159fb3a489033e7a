/**
 * Self-speculative split decoding at the engine level: the device drafts tokens with its
 * early-exit head (layers [0, K) + final norm + classifier), the edge verifies every draft
 * with layers [K, L) in one batched pass and answers the accepted prefix plus its own next
 * token. Greedy output is exactly plain split decoding's (and so the whole model's), in fewer
 * round trips.
 *
 * One round trip, with the last answered token `t` at position `p`:
 *
 * 1. device: row(t) = layers[0,K)(embed t) at p; early-exit head → d1 with confidence c1;
 *    while the policy says "draft": row(d_i) at p+i, head → d_{i+1}.
 * 2. edge: layers[K,L) on rows p..p+m in one pass; head on every row; accept d_i while it
 *    equals the edge's token for its position; answer accepted drafts + the edge's next token.
 * 3. both sides now hold positions up to p+a (a accepted). The rows written for rejected
 *    drafts (p+a+1 ..) are stale and are simply overwritten: `forward` takes explicit
 *    positions and attends only to 0..pos+t, so rolling back is resuming at p+a+1.
 *
 * A step the policy calls "local" emits the early-exit token without the edge; its row goes
 * to the edge with the next frame (no head run for it there).
 *
 * @example
 * ```ts
 * import { speculativeSplit } from "./speculate.ts";
 * import type { Engine } from "./engine.ts";
 * declare const device: Engine; declare const edge: Engine;
 * const run = speculativeSplit(device, edge, [1], { split: 4, maxTokens: 50 });
 * for (let r = run.next(); !r.done; r = run.next()) console.log(r.value);
 * ```
 *
 * @module
 */

import { rowsFlops } from "./cost.ts";
import type { Engine, KVCache } from "./engine.ts";
import { check } from "./errors.ts";
import { checkExitAdapter, draftHeadFlops, draftLogits, type ExitAdapter } from "./exit_adapter.ts";
import { headFlops } from "./model.ts";
import { confidenceOf } from "./router/confidence.ts";
import { DefaultPolicy } from "./router/policy.ts";
import type { Confidence, Policy } from "./router/types.ts";
import { argmax } from "./sampling.ts";

/** The per-step half of a {@linkcode Policy}. */
export type StepPolicy = Pick<Policy, "step">;

/**
 * The device's drafter: runs the early-exit head on a boundary row and asks the policy
 * whether to draft (or emit locally) its token. Counts its own FLOPs.
 *
 * @example
 * ```ts
 * import { Drafter } from "./speculate.ts";
 * import type { Engine } from "./engine.ts";
 * declare const device: Engine; declare const row: Float32Array;
 * const d = new Drafter(device, { step: (c) => (c.top1 > 0.5 ? "draft" : "send") });
 * console.log(d.propose(row, 0)); // a token id, or undefined to stop drafting
 * ```
 */
export class Drafter {
  /** FLOPs spent in the early-exit head. */
  headFlops = 0;
  /** Confidence of the last row looked at. */
  last?: Confidence;
  readonly #engine: Engine;
  readonly #policy: StepPolicy;
  readonly #adapter?: ExitAdapter;
  readonly #split: number;

  /**
   * A drafter over a device engine that holds the head; with `adapter`
   * (`exit_adapter.ts`), for rows after layer `split`, the head reads them through it.
   */
  constructor(engine: Engine, policy: StepPolicy, adapter?: ExitAdapter, split?: number) {
    check(engine.parts.head, "bad_argument", "Cannot draft: the device engine holds no head");
    this.#split = split ?? adapter?.split ?? engine.parts.layers[1];
    if (adapter) checkExitAdapter(adapter, this.#split, engine.config.dim);
    this.#engine = engine;
    this.#policy = policy;
    this.#adapter = adapter;
  }

  /** Early-exit confidence of one row [dim]. */
  confidence(row: Float32Array): Confidence {
    this.headFlops += draftHeadFlops(this.#engine.config, this.#adapter);
    this.last = confidenceOf(draftLogits(this.#engine, row, this.#split, this.#adapter));
    return this.last;
  }

  /** The token to draft after `row` (`drafted` so far), or undefined to send the frame. */
  propose(row: Float32Array, drafted: number): number | undefined {
    const c = this.confidence(row);
    return this.#policy.step(c, Math.max(1, drafted)) === "draft" ? c.token : undefined;
  }
}

/** What the edge answers for one frame. */
export interface Verdict {
  /** Accepted drafts, then the edge's own next token. */
  tokens: number[];
  /** Drafts accepted. */
  accepted: number;
}

/**
 * The edge half (greedy): runs layers [K, L) on `rows` at `pos`; with `tokens` (the token of
 * every row, the first known, the rest drafts) verifies the drafts, else answers the token
 * after the last row.
 *
 * @example
 * ```ts
 * import { verifyRows } from "./speculate.ts";
 * import type { Engine, KVCache } from "./engine.ts";
 * declare const edge: Engine; declare const cache: KVCache; declare const rows: Float32Array;
 * console.log(verifyRows(edge, cache, 3, rows, 10, [42, 7, 9]).accepted);
 * ```
 */
export function verifyRows(
  edge: Engine,
  cache: KVCache,
  split: number,
  rows: Float32Array,
  pos: number,
  tokens?: readonly number[],
): Verdict {
  const { dim, vocabSize, nLayers } = edge.config;
  const n = rows.length / dim;
  const h = edge.forward(cache, rows, pos, split, nLayers); // [n, dim]
  if (!tokens) return { tokens: [argmax(edge.head(h.subarray((n - 1) * dim)))], accepted: 0 };
  const logits = edge.head(h); // [n, vocab]
  const out: number[] = [];
  for (let r = 0; r < n; r++) {
    const t = argmax(logits, r * vocabSize, vocabSize);
    out.push(t);
    if (r + 1 >= n || tokens[r + 1] !== t) break;
  }
  return { tokens: out, accepted: out.length - 1 };
}

/** Options of {@linkcode speculativeSplit}. */
export interface SpeculateOptions {
  /** Split layer K: the device runs [0, K) and drafts from there. */
  split: number;
  /** Most tokens to produce (default 256; clipped to the context). */
  maxTokens?: number;
  /** Stop at EOS/BOS (default true). */
  stopAtEos?: boolean;
  /** Draft/local decisions per step (default: {@linkcode DefaultPolicy}); `"plain"` never
   * runs the early-exit head: plain split decoding, one token per round trip. */
  policy?: StepPolicy | "plain";
  /** The early-exit head reads rows after layer `split` through this (`exit_adapter.ts`). */
  exitAdapter?: ExitAdapter;
}

/** Totals of one speculative run. */
export interface SpeculationStats {
  /** Tokens yielded. */
  tokens: number;
  /** Frames sent to the edge. */
  roundTrips: number;
  /** Draft tokens proposed. */
  drafted: number;
  /** Draft tokens accepted. */
  accepted: number;
  /** Tokens emitted by the early-exit head alone. */
  localTokens: number;
  /** Rows the edge ran. */
  edgeRows: number;
  /** FLOPs on the device (layers [0, K) and the early-exit head). */
  deviceFlops: number;
  /** FLOPs on the edge (layers [K, L) and its head). */
  edgeFlops: number;
}

/**
 * Greedy split generation with self-speculation, both halves in process. Yields tokens;
 * returns the stats.
 *
 * @example
 * ```ts
 * import { speculativeSplit } from "./speculate.ts";
 * import type { Engine } from "./engine.ts";
 * declare const device: Engine; declare const edge: Engine;
 * const tokens = [...speculativeSplit(device, edge, [1], { split: 3, maxTokens: 20 })];
 * ```
 */
export function* speculativeSplit(
  device: Engine,
  edge: Engine,
  prompt: readonly number[],
  options: SpeculateOptions,
): Generator<number, SpeculationStats, void> {
  const c = device.config;
  const { split: K, maxTokens = 256, stopAtEos = true } = options;
  const L = c.nLayers;
  check(Number.isInteger(K) && K >= 1 && K < L, "bad_argument", `split ${K} is not 1..${L - 1}`);
  check(
    prompt.length > 0 && prompt.length < c.maxSeqLen,
    "bad_argument",
    () => `Cannot generate: the prompt has ${prompt.length} tokens, the context ${c.maxSeqLen}`,
  );
  const policy = options.policy === "plain" ? undefined : options.policy ?? new DefaultPolicy();
  const drafter = policy ? new Drafter(device, policy, options.exitAdapter, K) : undefined;
  const stats: SpeculationStats = {
    tokens: 0,
    roundTrips: 0,
    drafted: 0,
    accepted: 0,
    localTokens: 0,
    edgeRows: 0,
    deviceFlops: 0,
    edgeFlops: 0,
  };
  const stops = new Set(stopAtEos ? [...c.eosIds, c.bosId] : []);
  const devCache: KVCache = device.createCache([0, K]);
  const edgeCache: KVCache = edge.createCache([K, L]);
  const budget = Math.min(maxTokens, c.maxSeqLen - prompt.length + 1);
  const run = (tokens: readonly number[], at: number): Float32Array => {
    stats.deviceFlops += rowsFlops(c, K, at, tokens.length);
    return device.forward(devCache, device.embed(tokens), at, 0, K); // [n, dim]
  };
  /** Yields t unless it stops the run; returns whether to go on. */
  const emit = function* (t: number): Generator<number, boolean, void> {
    if (stops.has(t) || stats.tokens >= budget) return false;
    stats.tokens++;
    yield t;
    return stats.tokens < budget;
  };

  let sent = 0; //                 positions the edge holds
  let pos = prompt.length; //      positions the device holds
  let pending = [run(prompt, 0)]; // rows of positions sent..pos-1, not yet at the edge
  let last = prompt[prompt.length - 1]; // token of the row at pos-1
  while (true) {
    const tail = pending[pending.length - 1];
    const conf = drafter?.confidence(tail.subarray(tail.length - c.dim));
    const action = conf && policy ? policy.step(conf, 0) : "send";
    if (action === "local" && conf && pos < c.maxSeqLen) {
      stats.localTokens++;
      if (!(yield* emit(conf.token))) break;
      pending.push(run([conf.token], pos++));
      last = conf.token;
      continue;
    }
    // Drafts only ride on a frame holding one known row (not the prompt, not local rows).
    const drafts: number[] = [];
    if (action === "draft" && conf && pending.length === 1 && pos - sent === 1) {
      for (
        let d: number | undefined = conf.token;
        d !== undefined && drafts.length + 1 < budget - stats.tokens && pos < c.maxSeqLen;
        d = drafter!.propose(pending[pending.length - 1], drafts.length)
      ) {
        drafts.push(d);
        pending.push(run([d], pos++));
      }
    }
    const rows = concat(pending);
    const n = rows.length / c.dim;
    const verdict = verifyRows(
      edge,
      edgeCache,
      K,
      rows,
      sent,
      drafts.length ? [last, ...drafts] : undefined,
    );
    stats.roundTrips++;
    stats.edgeRows += n;
    stats.edgeFlops += rowsFlops(c, L - K, sent, n) + (drafts.length ? n : 1) * headFlops(c);
    stats.drafted += drafts.length;
    stats.accepted += verdict.accepted;
    // Roll back both sides to the accepted prefix: later rows are stale and get overwritten.
    sent += n - (drafts.length - verdict.accepted);
    pos = sent;
    let more = true;
    for (const t of verdict.tokens) if (more) more = yield* emit(t);
    if (!more || pos >= c.maxSeqLen) break;
    last = verdict.tokens[verdict.tokens.length - 1];
    pending = [run([last], pos++)];
  }
  stats.deviceFlops += drafter?.headFlops ?? 0;
  return stats;
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
