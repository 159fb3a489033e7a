/**
 * The edge half of a split step: check a decoded frame against its session, run layers
 * [K, L) on its rows, and answer token(s) — one for a plain frame, the accepted drafts plus
 * the next token for a frame flagged `TOKENS`, none for `NO_REPLY`.
 *
 * Sequence numbers make retries safe: the frame with the session's next number runs; the
 * same frame again (a retry after a lost answer) gets the stored answer without running; any
 * other number is a `conflict`. A frame may start at any position up to what the session
 * holds (an earlier one rolls back, e.g. after rejected drafts), never beyond.
 *
 * @example
 * ```ts
 * import { newEdgeSession, runFrame } from "./split_forward.ts";
 * import type { EdgeModel } from "./models.ts";
 * import type { Frame } from "../runtime/wire.ts";
 * declare const model: EdgeModel; declare const frame: Frame;
 * const s = newEdgeSession(model, 2, {});
 * const body = runFrame(s, frame); // NDJSON answer
 * ```
 *
 * @module
 */

import { hexToBytes } from "../runtime/digest.ts";
import type { KVCache } from "../runtime/engine.ts";
import { check, TandemError } from "../runtime/errors.ts";
import { Sampler, type SamplerOptions } from "../runtime/sampling.ts";
import {
  FLAG_EMBED,
  FLAG_NO_REPLY,
  FLAG_TOKENS,
  type Frame,
  frameLength,
} from "../runtime/wire.ts";
import { encodeReplyLine, logprobs, type ReplyToken } from "../runtime/wire_reply.ts";
import type { EdgeModel } from "./models.ts";

/** One split session held by the edge. */
export interface EdgeSession {
  /** The model served. */
  model: EdgeModel;
  /** Split layer K: the edge runs [K, L). */
  split: number;
  /** KV cache for [K, L). */
  cache: KVCache;
  /** Positions the session holds. */
  length: number;
  /**
   * The token the edge picked for position `length` (its last answer's last token), when it
   * answered one: a draft stream row at `length` is computed only when it carries this token.
   */
  next?: number;
  /** Sequence number the next frame must carry. */
  nextSeq: number;
  /** The answer to the last frame (for an idempotent retry). */
  lastAnswer?: { seq: number; body: string };
  /** Sampling settings (greedy by default). */
  sampling: SamplerOptions;
  /** Bytes held (the KV cache), charged against the edge's budget. */
  bytes: number;
  /**
   * Token prefill (wire 1.2): KV for [0, K) of the positions prefilled from token ids, kept
   * while consecutive `EMBED` frames arrive and dropped at the first frame of rows.
   */
  lower?: { cache: KVCache; length: number };
}

/**
 * Why the edge cannot prefill a split at `split` from token ids (undefined when it can): it
 * needs the embedding and layers [0, K) besides [K, L).
 *
 * @example
 * ```ts
 * import { tokenPrefillProblem } from "./split_forward.ts";
 * import type { EdgeModel } from "./models.ts";
 * declare const model: EdgeModel;
 * console.log(tokenPrefillProblem(model) ?? "token prefill served");
 * ```
 */
export function tokenPrefillProblem(m: EdgeModel): string | undefined {
  if (m.parts.embed && m.parts.layers[0] === 0) return undefined;
  return `this edge holds layers [${m.parts.layers[0]}, ${m.parts.layers[1]}) of ${m.id}${
    m.parts.embed ? "" : " and no embedding"
  }; token prefill needs the embedding and every layer: send the prompt's rows instead`;
}

/**
 * A fresh session for a split at K.
 *
 * @example
 * ```ts
 * import { newEdgeSession } from "./split_forward.ts";
 * import type { EdgeModel } from "./models.ts";
 * declare const model: EdgeModel;
 * const s = newEdgeSession(model, 3, { temperature: 0 });
 * ```
 */
export function newEdgeSession(
  model: EdgeModel,
  split: number,
  sampling: SamplerOptions,
): EdgeSession {
  new Sampler(sampling); // validates
  const cache = model.engine.createCache([split, model.config.nLayers]);
  return { model, split, cache, length: 0, nextSeq: 0, sampling, bytes: cache.bytes };
}

/** A 32-bit mix of a seed and a position: each position samples from its own stream. */
function seedAt(seed: number, pos: number): number {
  let h = Math.imul((seed | 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(pos + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  return Math.imul(h, 0x27d4eb2d) >>> 0;
}

/**
 * Picks the token at a row of logits for position `pos` (greedy, or sampled from a stream
 * seeded by the session seed and the position, so a replayed session samples the same).
 *
 * @example
 * ```ts
 * import { pickToken } from "./split_forward.ts";
 * console.log(pickToken(new Float32Array([0, 3, 1]), 0, 3, {}, 0)); // 1
 * ```
 */
export function pickToken(
  logits: Float32Array,
  off: number,
  vocab: number,
  sampling: SamplerOptions,
  pos: number,
): number {
  const sampler = new Sampler({ ...sampling, seed: seedAt(sampling.seed ?? 1, pos) });
  return sampler.sample(logits, off, vocab);
}

/**
 * Checks that a frame belongs to this session (session id, weights digest, model, split, dim);
 * throws the typed error for the first problem.
 *
 * @example
 * ```ts
 * import { checkFrameIdentity, type EdgeSession } from "./split_forward.ts";
 * import type { Frame } from "../runtime/wire.ts";
 * declare const s: EdgeSession; declare const f: Frame;
 * checkFrameIdentity(s, f, f.session);
 * ```
 */
export function checkFrameIdentity(s: EdgeSession, f: Frame, sessionBytes: Uint8Array): void {
  const m = s.model;
  check(
    f.session.every((b, i) => b === sessionBytes[i]),
    "bad_frame",
    "Cannot run frame: it names another session than the URL",
  );
  check(
    f.digest.every((b, i) => b === m.digestBytes[i]),
    "model_mismatch",
    () => `Cannot run frame: its weights digest differs from ${m.id}'s (${m.digest.slice(0, 16)}…)`,
  );
  check(
    f.modelId === m.id,
    "bad_frame",
    () => `Cannot run frame: it is for model ${f.modelId}, the session serves ${m.id}`,
  );
  check(
    f.split === s.split,
    "bad_frame",
    () => `Cannot run frame: it is split at layer ${f.split}, the session at ${s.split}`,
  );
  check(
    f.dim === m.config.dim,
    "bad_frame",
    () => `Cannot run frame: dim ${f.dim}, ${m.id} has dim ${m.config.dim}`,
  );
}

/**
 * Checks a frame against its session (session id, weights digest, model, split, dim, position);
 * throws otherwise.
 *
 * @example
 * ```ts
 * import { checkFrame, type EdgeSession } from "./split_forward.ts";
 * import type { Frame } from "../runtime/wire.ts";
 * declare const s: EdgeSession; declare const f: Frame;
 * checkFrame(s, f, f.session);
 * ```
 */
export function checkFrame(s: EdgeSession, f: Frame, sessionBytes: Uint8Array): void {
  const m = s.model;
  checkFrameIdentity(s, f, sessionBytes);
  const n = frameLength(f);
  check(
    f.pos <= s.length,
    "conflict",
    () =>
      `Cannot run frame: it starts at position ${f.pos}, the session holds ${s.length}; replay the missing positions`,
  );
  check(
    f.pos + n <= m.config.maxSeqLen,
    "bad_frame",
    () =>
      `Cannot run frame: positions ${f.pos}..${
        f.pos + n - 1
      } exceed the context of ${m.config.maxSeqLen}`,
  );
}

/**
 * Runs one frame on a session and returns the NDJSON answer (see `wire_reply.ts`).
 *
 * @example
 * ```ts
 * import { runFrame, type EdgeSession } from "./split_forward.ts";
 * import type { Frame } from "../runtime/wire.ts";
 * declare const s: EdgeSession; declare const f: Frame;
 * console.log(runFrame(s, f, f.session));
 * ```
 */
export function runFrame(
  s: EdgeSession,
  f: Frame,
  sessionBytes: Uint8Array,
  early?: { hidden: Float32Array; ms: number },
): string {
  if (s.lastAnswer && f.seq === s.lastAnswer.seq && f.seq + 1 === s.nextSeq) {
    return s.lastAnswer.body;
  }
  check(
    f.seq === s.nextSeq,
    "conflict",
    () => `Cannot run frame: sequence number ${f.seq}, the session expects ${s.nextSeq}`,
  );
  checkFrame(s, f, sessionBytes);
  const t0 = performance.now();
  const { engine, config } = s.model;
  const { dim, vocabSize, nLayers } = config;
  const n = frameLength(f);
  const flags = f.flags ?? 0;
  // [n, dim]; `early`: the rows already ran as they arrived (`streamed_forward.ts`).
  const ran = early && !(flags & (FLAG_TOKENS | FLAG_EMBED)) &&
    early.hidden.length === f.rows.length;
  const input = flags & FLAG_EMBED ? embedPrefix(s, f) : f.rows;
  if (!(flags & FLAG_EMBED)) endTokenPrefill(s);
  const h = ran ? early.hidden : engine.forward(s.cache, input, f.pos, s.split, nLayers);
  const tokens: ReplyToken[] = [];
  let accepted = 0;
  if (!(flags & FLAG_NO_REPLY)) {
    const drafts = flags & FLAG_TOKENS ? f.tokens! : undefined;
    const first = drafts ? 0 : n - 1; // drafts: every row gets the head; else only the last
    const logits = engine.head(h.subarray(first * dim)); // [n - first, vocab]
    for (let r = first; r < n; r++) {
      const off = (r - first) * vocabSize;
      const token = pickToken(logits, off, vocabSize, s.sampling, f.pos + r);
      const t: ReplyToken = { token, pos: f.pos + r + 1 };
      if (f.topK) Object.assign(t, logprobs(logits, off, vocabSize, f.topK, token));
      tokens.push(t);
      if (!drafts || r + 1 >= n || drafts[r + 1] !== token) break;
      accepted++;
    }
  }
  s.length = f.pos + (flags & FLAG_TOKENS && !(flags & FLAG_NO_REPLY) ? accepted + 1 : n);
  s.next = tokens.length > 0 ? tokens[tokens.length - 1].token : undefined;
  s.bytes = heldBytes(s);
  s.nextSeq = f.seq + 1;
  const edgeMs = performance.now() - t0 + (ran ? early.ms : 0);
  const done = { done: true as const, seq: f.seq, accepted, length: s.length, edgeMs };
  const body = tokens.map(encodeReplyLine).join("") + encodeReplyLine(done);
  s.lastAnswer = { seq: f.seq, body };
  return body;
}

/** Rows at the split end a token prefill: frees the edge's [0, K) KV that served it. */
export function endTokenPrefill(s: EdgeSession): void {
  s.lower = undefined;
}

/** The KV bytes a session holds, as charged against the edge's budget. */
export function heldBytes(s: EdgeSession): number {
  return s.cache.bytes + (s.lower?.cache.bytes ?? 0);
}

/**
 * Token prefill (`EMBED`): embeds the frame's token ids and runs [0, K) on them, in the
 * session's lower cache (fresh at position 0); answers the rows at the split, [n, dim].
 */
function embedPrefix(s: EdgeSession, f: Frame): Float32Array {
  const problem = tokenPrefillProblem(s.model);
  if (problem) throw new TandemError("bad_request", `Cannot prefill from token ids: ${problem}`);
  const { engine, config } = s.model;
  const tokens = f.tokens!;
  for (const t of tokens) {
    check(
      t < config.vocabSize,
      "bad_frame",
      () =>
        `Cannot prefill from token ids: id ${t} is outside the vocabulary of ${config.vocabSize}`,
    );
  }
  if (f.pos === 0) s.lower = { cache: engine.createCache([0, s.split]), length: 0 };
  const lower = s.lower;
  check(
    lower !== undefined && f.pos <= lower.length,
    "conflict",
    () =>
      `Cannot prefill from token ids at position ${f.pos}: the edge holds layers [0, ${s.split}) for ${
        lower?.length ?? 0
      } positions; token prefill continues a token prefill from position 0`,
  );
  const x = engine.forward(lower.cache, engine.embed(tokens), f.pos, 0, s.split);
  lower.length = f.pos + tokens.length;
  return x;
}

/**
 * The 16 bytes of a UUID string (the session id a frame carries). Throws `session_not_found`
 * for anything that is not a UUID.
 *
 * @example
 * ```ts
 * import { uuidBytes } from "./split_forward.ts";
 * console.log(uuidBytes("00000000-0000-4000-8000-000000000001").length); // 16
 * ```
 */
export function uuidBytes(id: string): Uint8Array {
  const hex = id.replaceAll("-", "");
  if (!/^[0-9a-f]{32}$/i.test(hex)) {
    throw new TandemError(
      "session_not_found",
      `Cannot use session ${id.slice(0, 64)}: not a session id`,
    );
  }
  return hexToBytes(hex);
}
