/**
 * The device session's requests to the edge: each frame is sent with the session's next
 * sequence number and retried with the same number when no answer came (the edge answers a
 * resend idempotently); when the edge has lost the session (`session_not_found`: restart,
 * eviction, TTL) the transport opens a new one, replays the stored boundary rows into it
 * (frames flagged `NO_REPLY | REPLAY`) and resends the step. It also keeps the session's byte,
 * request and edge-FLOP totals.
 *
 * @example
 * ```ts
 * import { SessionTransport } from "./session_transport.ts";
 * declare const transport: SessionTransport;
 * const reply = await transport.send(0, 5, 0); // rows [0, 5) of the history; answers a token
 * console.log(reply.tokens[0].token, transport.seq);
 * ```
 *
 * @module
 */

import { rowsFlops } from "./cost.ts";
import { hexToBytes } from "./digest.ts";
import type { EdgeClient, SessionInfo } from "./edge_client.ts";
import { TandemError } from "./errors.ts";
import { headFlops, type ModelConfig } from "./model.ts";
import type { StreamedFrame } from "./pipelined_frame.ts";
import { type RetryOptions, withRetries } from "./retry.ts";
import type { BoundaryHistory, FrameHeader } from "./session_frames.ts";
import type { SessionOptions, SessionStats } from "./session_options.ts";
import {
  FLAG_EMBED,
  FLAG_NO_REPLY,
  FLAG_REPLAY,
  FLAG_STREAM,
  FLAG_TOKENS,
  type WireDtype,
} from "./wire.ts";
import type { Reply } from "./wire_reply.ts";

/** The session settings the transport uses. */
export type TransportOptions =
  & Required<Pick<SessionOptions, "modelId" | "topK" | "maxRecoveries" | "retries" | "split">>
  & Pick<SessionOptions, "sampling" | "retryDelayMs">;

/** One split session's connection to its edge. */
export class SessionTransport {
  /** The edge session (replaced when a lost one is rebuilt). */
  info: SessionInfo;
  /** The sequence number the next frame carries. */
  seq = 0;
  readonly #o: TransportOptions;
  readonly #client: EdgeClient;
  readonly #digest: string;
  readonly #history: BoundaryHistory;
  readonly #stats: SessionStats;
  readonly #config: ModelConfig;

  /** A transport for an open edge session; `stats` is updated in place. */
  constructor(
    o: TransportOptions,
    client: EdgeClient,
    digest: string,
    info: SessionInfo,
    history: BoundaryHistory,
    stats: SessionStats,
    config: ModelConfig,
  ) {
    this.#o = o;
    this.#client = client;
    this.#digest = digest;
    this.info = info;
    this.#history = history;
    this.#stats = stats;
    this.#config = config;
  }

  /** A frame's header fields at `pos` with the next sequence number. */
  header(pos: number, flags: number, dtype: WireDtype): FrameHeader {
    return {
      dtype,
      topK: this.#o.topK,
      flags,
      split: this.#o.split,
      dim: this.#config.dim,
      pos,
      seq: this.seq,
      session: hexToBytes(this.info.id.replaceAll("-", "")),
      digest: hexToBytes(this.#digest),
      modelId: this.#o.modelId,
    };
  }

  /**
   * Sends rows [from, to) of the history (streamed the first time when `streamed`); on a lost
   * session rebuilds it by replay; retries lost answers with the whole frame.
   */
  async send(
    from: number,
    to: number,
    flags: number,
    tokens?: Uint32Array,
    streamed?: StreamedFrame,
  ): Promise<Reply> {
    let first = streamed;
    const frame = (): Uint8Array | StreamedFrame => {
      const s = first;
      first = undefined;
      if (s) return s;
      streamed?.finish();
      return this.#history.frame(this.header(from, flags, "f32"), from, to, tokens);
    };
    return await this.#recovering(from, () => this.post(frame, to - from, flags, from));
  }

  /**
   * Token prefill (wire 1.2): sends positions [from, to) of the history, marked as token ids,
   * as one `EMBED` frame; the edge runs the whole model over them and answers the next token.
   * On a lost session rebuilds it by replay first, like {@linkcode send}.
   */
  async sendTokens(from: number, to: number): Promise<Reply> {
    return await this.#recovering(from, () =>
      this.post(
        () => this.#history.tokenFrame(this.header(from, 0, "f32"), from, to),
        to - from,
        FLAG_EMBED,
        from,
      ));
  }

  /**
   * Runs `attempt`; when the edge lost the session, rebuilds it by replaying [0, from) and tries
   * again, at most `maxRecoveries` times.
   */
  async #recovering(from: number, attempt: () => Promise<Reply>): Promise<Reply> {
    for (let recoveries = 0;; recoveries++) {
      try {
        return await attempt();
      } catch (e) {
        if (
          !(e instanceof TandemError && e.code === "session_not_found") ||
          recoveries >= this.#o.maxRecoveries
        ) throw e;
        await this.recover(from);
      }
    }
  }

  /**
   * Opens a new edge session and replays boundary rows [0, upTo) into it (positions first sent
   * as token ids go again as token ids: the edge rebuilds the same KV from them).
   */
  async recover(upTo: number): Promise<void> {
    this.info = await withRetries(() =>
      this.#client.openSession({
        model: this.#o.modelId,
        split: this.#o.split,
        digest: this.#digest,
        sampling: this.#o.sampling,
      }), this.retry);
    this.seq = 0;
    this.#stats.recoveries++;
    const flags = FLAG_NO_REPLY | FLAG_REPLAY;
    for (const [p, q] of this.#history.replayRuns(upTo, this.info.maxTokensPerFrame)) {
      const tokens = this.#history.isToken(p);
      const frame = () =>
        tokens
          ? this.#history.tokenFrame(this.header(p, flags, "f32"), p, q)
          : this.#history.frame(this.header(p, flags, "f32"), p, q);
      await this.post(frame, q - p, FLAG_NO_REPLY | (tokens ? FLAG_EMBED : 0), p);
      this.#stats.replayedRows += q - p;
    }
  }

  /**
   * One request (retried with the same sequence number when no answer came); `n` rows at
   * `pos` and the frame's flags, for the edge-FLOP count (`EMBED`: the whole model).
   */
  async post(
    frameOf: () => Uint8Array | StreamedFrame,
    n: number,
    flags: number,
    pos: number,
  ): Promise<Reply> {
    const c = this.#config;
    const heads = flags & FLAG_NO_REPLY ? 0 : flags & FLAG_TOKENS ? n : 1;
    const layers = flags & FLAG_EMBED ? c.nLayers : c.nLayers - this.#o.split;
    const flops = rowsFlops(c, layers, pos, n) + heads * headFlops(c);
    return await withRetries(async () => {
      const frame = frameOf();
      const reply = frame instanceof Uint8Array
        ? await this.#exchange(this.info.id, frame, frame.byteLength, flops)
        : await this.#exchange(this.info.id, frame.body, frame.bytes, flops);
      this.seq++;
      return reply;
    }, this.retry);
  }

  /**
   * One request and its answer, into the stats: a round trip, bytes each way, the wait, the
   * edge's time, and `flops` unless the edge answered without computing (a stale stream row).
   */
  async #exchange(
    id: string,
    body: Uint8Array | ReadableStream<Uint8Array>,
    sent: number,
    flops: number,
  ): Promise<Reply> {
    const t0 = performance.now();
    this.#stats.roundTrips++;
    this.#stats.bytesSent += sent;
    const reply = await this.#client.forward(id, body, () => {});
    this.#stats.waitMs += performance.now() - t0;
    this.#stats.bytesReceived += reply.bytes;
    this.#stats.edgeMs += reply.edgeMs;
    if (!reply.stale) this.#stats.edgeFlops += flops;
    return reply;
  }

  /**
   * Sends the history's row at `pos`, run from `token`, as one draft stream frame (wire 1.1):
   * it takes the next sequence number now, so several may be in flight; retried with the same
   * bytes when no answer came. Edge FLOPs count only when the edge computed it (not stale).
   */
  async postStream(pos: number, token: number): Promise<Reply> {
    const flags = FLAG_STREAM | FLAG_TOKENS;
    const header = this.header(pos, flags, "f32");
    this.seq++;
    const bytes = this.#history.frame(header, pos, pos + 1, Uint32Array.of(token));
    const id = this.info.id;
    const c = this.#config;
    const flops = rowsFlops(c, c.nLayers - this.#o.split, pos, 1) + headFlops(c);
    return await withRetries(async () => {
      const reply = await this.#exchange(id, bytes, bytes.byteLength, flops);
      if (!reply.stale) this.#stats.tokens++;
      return reply;
    }, this.retry);
  }

  /** Closes the edge session. */
  async close(): Promise<void> {
    await this.#client.closeSession(this.info.id);
  }

  /** The retry settings of this session's requests. */
  get retry(): RetryOptions {
    return { retries: this.#o.retries, baseDelayMs: this.#o.retryDelayMs ?? 20 };
  }
}
