/**
 * The edge half of draft streaming (wire 1.1, flag `STREAM`): the device sends each boundary
 * row as soon as it has computed it, as its own request, several in flight at once; the edge
 * runs a session's frames strictly in sequence-number order and computes a stream row only
 * when it is on the branch the edge has verified:
 *
 * | the row (position p, input token t)                      | the edge                                  |
 * | -------------------------------------------------------- | ----------------------------------------- |
 * | p = the session's length and t = the edge's token there  | runs [K, L) and the head; answers the token for p + 1 |
 * | anything else (a draft after a mismatch, a dead branch)  | answers `stale` (with its length and token) and computes nothing |
 *
 * So the edge runs exactly one row per token it answers, whatever the device drafted. A frame
 * that arrives before its predecessors is held (at most `maxHeld` per session, each at most
 * `holdMs`; past either it is answered 409 `conflict`); the answers of the last `window`
 * frames are kept, so a resend (same sequence number, same bytes) gets its stored answer and a
 * different frame under a used number gets 409 `conflict`.
 *
 * @example
 * ```ts
 * import { DraftStreams } from "./draft_stream.ts";
 * import type { EdgeSession } from "./split_forward.ts";
 * import type { Frame } from "../runtime/wire.ts";
 * declare const s: EdgeSession; declare const f: Frame; declare const bytes: Uint8Array;
 * const streams = new DraftStreams({ maxHeld: 32, holdMs: 10_000, window: 64 });
 * const answer = await streams.submit(s, f, bytes, f.session); // NDJSON, in order
 * streams.dispose();
 * ```
 *
 * @module
 */

import { check, TandemError } from "../runtime/errors.ts";
import { FLAG_NO_REPLY, FLAG_TOKENS, type Frame } from "../runtime/wire.ts";
import { encodeReplyLine, logprobs, type ReplyToken } from "../runtime/wire_reply.ts";
import { fingerprint } from "./retry_guard.ts";
import {
  checkFrameIdentity,
  type EdgeSession,
  endTokenPrefill,
  heldBytes,
  pickToken,
} from "./split_forward.ts";

/** Bounds of the per-session reordering. */
export interface StreamLimits {
  /** Most frames held per session waiting for a predecessor. */
  maxHeld: number;
  /** Longest a held frame waits for its predecessors, ms. */
  holdMs: number;
  /** Answers kept per session for resends. */
  window: number;
}

/** Called after each stream frame runs (for metrics; a resend answered from store is not). */
export type StreamRan = (s: EdgeSession, f: Frame, bytes: number, body: string, ms: number) => void;

interface Held {
  frame: Frame;
  bytes: Uint8Array;
  print: string;
  waiters: { resolve: (body: string) => void; reject: (e: unknown) => void }[];
  timer: ReturnType<typeof setTimeout>;
}

interface StreamState {
  held: Map<number, Held>;
  answers: Map<number, { print: string; body: string }>;
}

/**
 * Runs one stream row on a session whose next frame it is: computes it when it is on the
 * verified branch, else answers stale. Returns the NDJSON answer.
 *
 * @example
 * ```ts
 * import { runStreamRow } from "./draft_stream.ts";
 * import type { EdgeSession } from "./split_forward.ts";
 * import type { Frame } from "../runtime/wire.ts";
 * declare const s: EdgeSession; declare const f: Frame;
 * console.log(runStreamRow(s, f));
 * ```
 */
export function runStreamRow(s: EdgeSession, f: Frame): string {
  const t0 = performance.now();
  const { engine, config } = s.model;
  const token = f.tokens![0];
  let line = "";
  if (f.pos === s.length && s.next !== undefined && token === s.next) {
    endTokenPrefill(s);
    const h = engine.forward(s.cache, f.rows, f.pos, s.split, config.nLayers); // [1, dim]
    const logits = engine.head(h); // [vocab]
    const next = pickToken(logits, 0, config.vocabSize, s.sampling, f.pos);
    const t: ReplyToken = { token: next, pos: f.pos + 1 };
    if (f.topK) Object.assign(t, logprobs(logits, 0, config.vocabSize, f.topK, next));
    line = encodeReplyLine(t);
    s.length = f.pos + 1;
    s.next = next;
    s.bytes = heldBytes(s);
    const edgeMs = performance.now() - t0;
    return line +
      encodeReplyLine({ done: true, seq: f.seq, accepted: 1, length: s.length, edgeMs });
  }
  return encodeReplyLine({
    done: true,
    seq: f.seq,
    accepted: 0,
    length: s.length,
    edgeMs: 0,
    stale: true,
    ...(s.next !== undefined ? { next: s.next } : {}),
  });
}

/** The draft streams of an edge's sessions: ordering, holding, resends. */
export class DraftStreams {
  /** The limits in force. */
  readonly limits: StreamLimits;
  readonly #states = new WeakMap<EdgeSession, StreamState>();
  readonly #live = new Set<Held>();
  readonly #ran: StreamRan;

  /** Streams under `limits`; `ran` sees every frame run (not resends). */
  constructor(limits: StreamLimits, ran: StreamRan = () => {}) {
    this.limits = limits;
    this.#ran = ran;
  }

  /**
   * Answers a stream frame once it is its session's turn (see the module doc). Throws
   * `bad_frame` for a frame that is not one stream row, `conflict` for a reused or
   * unreachable sequence number.
   */
  submit(s: EdgeSession, f: Frame, bytes: Uint8Array, sessionBytes: Uint8Array): Promise<string> {
    const flags = f.flags ?? 0;
    const n = f.rows.length / f.dim;
    check(
      n === 1 && (flags & FLAG_TOKENS) !== 0 && (flags & FLAG_NO_REPLY) === 0,
      "bad_frame",
      () =>
        `Cannot run stream frame: it must carry exactly one row with its token (flag TOKENS, not NO_REPLY); it has ${n} rows, flags ${flags}`,
    );
    checkFrameIdentity(s, f, sessionBytes);
    check(
      f.pos < s.model.config.maxSeqLen,
      "bad_frame",
      () =>
        `Cannot run stream frame: position ${f.pos} is beyond the context of ${s.model.config.maxSeqLen}`,
    );
    const st = this.#state(s);
    const print = fingerprint(bytes);
    if (f.seq < s.nextSeq) {
      const a = st.answers.get(f.seq);
      if (!a || a.print !== print) {
        throw new TandemError(
          "conflict",
          a
            ? `Cannot run frame: sequence number ${f.seq} was already used by a different frame; the session expects ${s.nextSeq}`
            : `Cannot run frame: sequence number ${f.seq} is older than the ${this.limits.window} answers kept; the session expects ${s.nextSeq}`,
        );
      }
      return Promise.resolve(a.body);
    }
    if (f.seq === s.nextSeq) {
      const body = this.#run(s, st, f, bytes, print);
      this.drain(s);
      return Promise.resolve(body);
    }
    return this.#hold(s, st, f, bytes, print);
  }

  /** Runs the session's held frames that are now next in order. */
  drain(s: EdgeSession): void {
    const st = this.#states.get(s);
    if (!st) return;
    for (let h = st.held.get(s.nextSeq); h; h = st.held.get(s.nextSeq)) {
      st.held.delete(h.frame.seq);
      this.#settle(h);
      try {
        const body = this.#run(s, st, h.frame, h.bytes, h.print);
        for (const w of h.waiters) w.resolve(body);
      } catch (e) {
        for (const w of h.waiters) w.reject(e);
        return;
      }
    }
  }

  /** Frames held now, over all sessions. */
  get held(): number {
    return this.#live.size;
  }

  /** Answers a dropped session's held frames `session_not_found` (the device replays). */
  forget(s: EdgeSession): void {
    const st = this.#states.get(s);
    if (!st) return;
    this.#states.delete(s);
    for (const h of st.held.values()) {
      this.#settle(h);
      const e = new TandemError(
        "session_not_found",
        "Cannot run frame: the edge dropped its session (expired, evicted or closed); reopen it and replay",
      );
      for (const w of h.waiters) w.reject(e);
    }
  }

  /** Answers every held frame `capacity` (the edge is shutting down) and clears its timer. */
  dispose(): void {
    for (const h of [...this.#live]) {
      this.#settle(h);
      const e = new TandemError("capacity", "Cannot run frame: the edge is shutting down");
      for (const w of h.waiters) w.reject(e);
    }
  }

  #state(s: EdgeSession): StreamState {
    let st = this.#states.get(s);
    if (!st) this.#states.set(s, st = { held: new Map(), answers: new Map() });
    return st;
  }

  #run(s: EdgeSession, st: StreamState, f: Frame, bytes: Uint8Array, print: string): string {
    const t0 = performance.now();
    const body = runStreamRow(s, f);
    s.nextSeq = f.seq + 1;
    s.lastAnswer = undefined; // a plain frame may not reuse a stream frame's number
    st.answers.set(f.seq, { print, body });
    st.answers.delete(f.seq - this.limits.window);
    this.#ran(s, f, bytes.byteLength, body, performance.now() - t0);
    return body;
  }

  #hold(
    s: EdgeSession,
    st: StreamState,
    f: Frame,
    bytes: Uint8Array,
    print: string,
  ): Promise<string> {
    const { maxHeld, holdMs } = this.limits;
    return new Promise<string>((resolve, reject) => {
      const same = st.held.get(f.seq);
      if (same) {
        if (same.print !== print) {
          reject(
            new TandemError(
              "conflict",
              `Cannot run frame: sequence number ${f.seq} is already waiting with a different frame`,
            ),
          );
        } else same.waiters.push({ resolve, reject });
        return;
      }
      if (f.seq - s.nextSeq > maxHeld || st.held.size >= maxHeld) {
        reject(
          new TandemError(
            "conflict",
            `Cannot run frame: sequence number ${f.seq} is too far ahead of ${s.nextSeq} (at most ${maxHeld} frames wait for their predecessors)`,
          ),
        );
        return;
      }
      const h: Held = {
        frame: f,
        bytes,
        print,
        waiters: [{ resolve, reject }],
        timer: setTimeout(() => {
          st.held.delete(f.seq);
          this.#settle(h);
          const e = new TandemError(
            "conflict",
            `Cannot run frame: sequence number ${f.seq} waited ${holdMs} ms for frame ${s.nextSeq}, which never came; resend it`,
          );
          for (const w of h.waiters) w.reject(e);
        }, holdMs),
      };
      st.held.set(f.seq, h);
      this.#live.add(h);
    });
  }

  #settle(h: Held): void {
    clearTimeout(h.timer);
    this.#live.delete(h);
  }
}
