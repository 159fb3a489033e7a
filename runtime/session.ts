/**
 * The device half of split inference: embedding and layers [0, K) run here, each step's
 * boundary activations go to the edge in a wire frame, and the edge's tokens stream back.
 *
 * The session keeps its own KV cache for [0, K) and the boundary activations of the whole
 * context. When the edge has lost the session (restart, eviction, TTL) it answers
 * `session_not_found`; the session then opens a new one and replays the stored activations
 * (frames flagged `NO_REPLY | REPLAY`) before resending the step, so the caller sees no lost
 * or repeated token. A request that got no answer is retried with the same sequence number,
 * which the edge answers idempotently.
 *
 * Greedy split generation gives exactly the tokens of {@linkcode generate} on the whole
 * model (with `f32` on the wire; `f16` and `int8` trade exactness for bytes).
 *
 * @example
 * ```ts
 * import { createSession } from "./session.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model; // the whole model, or a device shard with its digest
 * const session = await createSession({ model, modelId: "stories260K", split: 2,
 *   edge: "http://127.0.0.1:8787", wire: "int8" });
 * for await (const token of session.generate([1], { maxTokens: 50 })) console.log(token);
 * console.log(session.stats);
 * await session.close();
 * ```
 *
 * @module
 */

import { digestModel, hexToBytes } from "./digest.ts";
import { EdgeClient, type SessionInfo } from "./edge_client.ts";
import type { Engine, KVCache } from "./engine.ts";
import { check, TandemError } from "./errors.ts";
import { RefEngine } from "./forward.ts";
import { headFlops, layerFlops, type Model, type ModelConfig } from "./model.ts";
import type { SamplerOptions } from "./sampling.ts";
import {
  encodeFrame,
  FLAG_NO_REPLY,
  FLAG_REPLAY,
  FLAG_TOKENS,
  type Frame,
  type WireDtype,
} from "./wire.ts";
import { type StreamedFrame, streamedFrame } from "./pipelined_frame.ts";
import type { Reply, ReplyToken } from "./wire_reply.ts";
import { type RetryOptions, withRetries } from "./retry.ts";

/** Options of {@linkcode createSession}. */
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

/** Options of {@linkcode SplitSession.generate}. */
export interface SplitGenerateOptions {
  /** Most tokens to produce (default 256; clipped to the context). */
  maxTokens?: number;
  /** Stop at EOS/BOS (default true); the stop token is not yielded. */
  stopAtEos?: boolean;
}

/** A device-side split session; create with {@linkcode createSession}. */
export class SplitSession {
  /** The full model's config. */
  readonly config: ModelConfig;
  /** Split layer K. */
  readonly split: number;
  /** Payload encoding on the wire. */
  readonly wire: WireDtype;
  /** Payload encoding of prompt rows. */
  readonly prefillWire: WireDtype;
  /** Running totals. */
  readonly stats: SessionStats = {
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
  /** The last answer's tokens, with logprobs when asked for. */
  lastTokens: ReplyToken[] = [];
  readonly #o:
    & Required<Pick<SessionOptions, "modelId" | "topK" | "maxRecoveries" | "retries">>
    & SessionOptions;
  readonly #engine: Engine;
  readonly #client: EdgeClient;
  readonly #digest: string;
  readonly #cache: KVCache;
  readonly #boundary: Float32Array; // [maxSeqLen, dim]: input of layer K at every position
  #info: SessionInfo;
  #seq = 0;
  #length = 0; // positions the device holds
  #unfed: number[] = []; // tokens yielded but not yet run (the last one of a generation)
  readonly #sentAs: Uint8Array; // per position: 1 when sent with the prefill dtype (for replay)

  /** Use {@linkcode createSession}. */
  constructor(
    o: SessionOptions,
    engine: Engine,
    client: EdgeClient,
    digest: string,
    info: SessionInfo,
  ) {
    this.#o = { topK: 0, maxRecoveries: 3, retries: 2, ...o };
    this.config = engine.config;
    this.split = o.split;
    this.wire = o.wire ?? "f32";
    this.prefillWire = o.prefillWire ?? this.wire;
    this.#engine = engine;
    this.#client = client;
    this.#digest = digest;
    this.#info = info;
    this.#cache = engine.createCache([0, o.split]);
    this.#boundary = new Float32Array(engine.config.maxSeqLen * engine.config.dim);
    this.#sentAs = new Uint8Array(engine.config.maxSeqLen);
  }

  /** The edge's current session id (changes when a lost session is rebuilt). */
  get id(): string {
    return this.#info.id;
  }

  /** Positions of context held. */
  get length(): number {
    return this.#length;
  }

  /**
   * Runs `tokens` through [0, K) at the current position and sends them to the edge.
   * Returns the edge's answer tokens: the next token; or, with `draft: true` (the tokens
   * after the first are drafts), the accepted drafts and the next token — the session then
   * rolls back to what was accepted. Prompt chunks beyond `maxTokensPerFrame` go first as
   * `NO_REPLY` frames. With `extend` (self-speculation, one token only), the session drafts:
   * it calls `extend(row, drafted)` with the boundary row of the last token and runs the
   * token it returns, until it returns undefined; the frame then carries the drafts.
   */
  async step(
    tokens: readonly number[],
    options: {
      draft?: boolean;
      extend?: (row: Float32Array, drafted: number) => number | undefined;
    } = {},
  ): Promise<ReplyToken[]> {
    const { dim, maxSeqLen } = this.config;
    const pos = this.#length;
    check(tokens.length > 0, "bad_argument", "Cannot step: no tokens");
    check(
      pos + tokens.length <= maxSeqLen,
      "bad_argument",
      () => `Cannot step: ${pos + tokens.length} positions exceed the context of ${maxSeqLen}`,
    );
    const max = this.#info.maxTokensPerFrame;
    const chunk = this.#o.pipelineRows ?? 0;
    const prefill = tokens.length > 1 && !options.draft && !options.extend;
    if (
      prefill && chunk > 0 && tokens.length > chunk && tokens.length <= max &&
      this.prefillWire !== "int8"
    ) {
      return await this.#pipelined(tokens, pos, chunk);
    }
    const rows = this.#run(tokens, pos); // [n, dim]
    if (options.extend) {
      check(tokens.length === 1, "bad_argument", "Cannot draft after more than one token");
      const all = [...tokens];
      let row = rows.subarray(rows.length - dim);
      for (
        let d = options.extend(row, 0);
        d !== undefined && pos + all.length < maxSeqLen && all.length < max;
        d = options.extend(row, all.length - 1)
      ) {
        row = this.#run([d], pos + all.length);
        all.push(d);
      }
      if (all.length > 1) options = { draft: true };
      tokens = all;
    }
    if (options.draft) {
      check(
        tokens.length <= max,
        "bad_argument",
        () => `Cannot draft ${tokens.length} tokens: the edge takes at most ${max} per frame`,
      );
    }
    let start = pos;
    const end = pos + tokens.length;
    if (prefill) this.#sentAs.fill(1, pos, end);
    else this.#sentAs.fill(0, pos, end);
    while (end - start > max) {
      await this.#send(start, start + max, FLAG_NO_REPLY);
      start += max;
    }
    const draftTokens = options.draft ? Uint32Array.from(tokens) : undefined;
    const reply = await this.#send(start, end, options.draft ? FLAG_TOKENS : 0, draftTokens);
    this.#length = options.draft ? pos + reply.accepted + 1 : end;
    this.stats.tokens += reply.tokens.length;
    this.lastTokens = reply.tokens;
    return reply.tokens;
  }

  /** Runs `tokens` at `pos` through [0, K), stores their boundary rows; returns them. */
  #run(tokens: readonly number[], pos: number): Float32Array {
    const t0 = performance.now();
    const rows = this.#engine.forward(this.#cache, this.#engine.embed(tokens), pos, 0, this.split);
    this.stats.deviceMs += performance.now() - t0;
    this.#boundary.set(rows, pos * this.config.dim);
    this.stats.deviceFlops += this.split * this.#layerSum(pos, tokens.length);
    return rows;
  }

  /** A prompt sent as one frame streamed while its chunks are computed. */
  async #pipelined(tokens: readonly number[], pos: number, chunk: number): Promise<ReplyToken[]> {
    const end = pos + tokens.length;
    this.#sentAs.fill(1, pos, end);
    const streamed = streamedFrame(
      this.#header(pos, 0, this.prefillWire),
      tokens.length,
      chunk,
      (a, b) => this.#run(tokens.slice(a, b), pos + a),
    );
    const reply = await this.#send(pos, end, 0, undefined, streamed);
    this.#length = end;
    this.stats.tokens += reply.tokens.length;
    this.lastTokens = reply.tokens;
    return reply.tokens;
  }

  /** Yields generated token ids for `prompt`, continuing the session's context. */
  async *generate(
    prompt: readonly number[],
    options: SplitGenerateOptions = {},
  ): AsyncGenerator<number, void, void> {
    const { maxTokens = 256, stopAtEos = true } = options;
    const c = this.config;
    const feed = [...this.#unfed, ...prompt];
    this.#unfed = [];
    if (feed.length === 0) throw new TandemError("bad_argument", "Cannot generate: empty prompt");
    if (this.#length + feed.length >= c.maxSeqLen) {
      throw new TandemError(
        "bad_argument",
        `Cannot generate: ${this.#length + feed.length} tokens, the context holds ${c.maxSeqLen}`,
      );
    }
    check(
      Number.isInteger(maxTokens) && maxTokens >= 0,
      "bad_argument",
      `maxTokens must be a whole number, got ${maxTokens}`,
    );
    const stops = new Set([...c.eosIds, c.bosId]);
    let next = (await this.step(feed))[0].token;
    const budget = Math.min(maxTokens, c.maxSeqLen - this.#length + 1);
    for (let i = 0; i < budget; i++) {
      if (stopAtEos && stops.has(next)) return;
      yield next;
      if (i + 1 === budget || this.#length >= c.maxSeqLen) {
        this.#unfed = [next];
        return;
      }
      next = (await this.step([next]))[0].token;
    }
  }

  /** Closes the edge session. */
  async close(): Promise<void> {
    await this.#client.closeSession(this.#info.id);
  }

  /** A frame's header fields at `pos` with the next sequence number. */
  #header(pos: number, flags: number, dtype: WireDtype): Omit<Frame, "rows" | "tokens"> {
    return {
      dtype,
      topK: this.#o.topK,
      flags,
      split: this.split,
      dim: this.config.dim,
      pos,
      seq: this.#seq,
      session: hexToBytes(this.#info.id.replaceAll("-", "")),
      digest: hexToBytes(this.#digest),
      modelId: this.#o.modelId,
    };
  }

  /** Encodes rows [from, to) of the boundary history as a frame with the next sequence number. */
  #frame(from: number, to: number, flags: number, tokens?: Uint32Array): Uint8Array {
    const { dim } = this.config;
    const dtype = this.#sentAs[from] ? this.prefillWire : this.wire;
    return encodeFrame({
      ...this.#header(from, flags, dtype),
      tokens,
      rows: this.#boundary.subarray(from * dim, to * dim),
    });
  }

  /**
   * Sends rows [from, to) (streamed the first time when `streamed`); on a lost session
   * rebuilds it by replay; retries lost answers with the whole frame.
   */
  async #send(
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
      return this.#frame(from, to, flags, tokens);
    };
    for (let recoveries = 0;; recoveries++) {
      try {
        return await this.#post(frame, to - from, flags, from);
      } catch (e) {
        if (
          !(e instanceof TandemError && e.code === "session_not_found") ||
          recoveries >= this.#o.maxRecoveries
        ) throw e;
        await this.#recover(from);
      }
    }
  }

  /** Opens a new edge session and replays boundary rows [0, upTo) into it. */
  async #recover(upTo: number): Promise<void> {
    this.#info = await withRetries(() =>
      this.#client.openSession({
        model: this.#o.modelId,
        split: this.split,
        digest: this.#digest,
        sampling: this.#o.sampling,
      }), this.#retry);
    this.#seq = 0;
    this.stats.recoveries++;
    const max = this.#info.maxTokensPerFrame;
    for (let p = 0; p < upTo;) {
      // One frame per run of rows first sent with the same dtype, at most `max` rows.
      let q = Math.min(upTo, p + max);
      for (let i = p + 1; i < q; i++) if (this.#sentAs[i] !== this.#sentAs[p]) q = i;
      const flags = FLAG_NO_REPLY | FLAG_REPLAY;
      await this.#post(() => this.#frame(p, q, flags), q - p, FLAG_NO_REPLY, p);
      this.stats.replayedRows += q - p;
      p = q;
    }
  }

  /** One request (retried with the same sequence number when no answer came). */
  async #post(
    frameOf: () => Uint8Array | StreamedFrame,
    n: number,
    flags: number,
    pos: number,
  ): Promise<Reply> {
    return await withRetries(async () => {
      const frame = frameOf();
      const t0 = performance.now();
      this.stats.roundTrips++;
      const bytes = frame instanceof Uint8Array ? frame : frame.body;
      this.stats.bytesSent += frame instanceof Uint8Array ? frame.byteLength : frame.bytes;
      const reply = await this.#client.forward(this.#info.id, bytes, () => {});
      this.stats.waitMs += performance.now() - t0;
      this.stats.bytesReceived += reply.bytes;
      this.stats.edgeMs += reply.edgeMs;
      const heads = flags & FLAG_NO_REPLY ? 0 : flags & FLAG_TOKENS ? n : 1;
      this.stats.edgeFlops += (this.config.nLayers - this.split) * this.#layerSum(pos, n) +
        heads * headFlops(this.config);
      this.#seq++;
      return reply;
    }, this.#retry);
  }

  /** The retry settings of this session's requests. */
  get #retry(): RetryOptions {
    return { retries: this.#o.retries, baseDelayMs: this.#o.retryDelayMs ?? 20 };
  }

  #layerSum(pos: number, n: number): number {
    let f = 0;
    for (let i = 0; i < n; i++) f += layerFlops(this.config, pos + i + 1);
    return f;
  }
}

/**
 * Opens a split session with an edge: checks the device holds [0, K), computes the weights
 * digest if needed, and opens the edge side (`model_mismatch` if the edge holds another model).
 *
 * @example
 * ```ts
 * import { createSession } from "./session.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine;
 * const s = await createSession({ engine, modelId: "stories260K", modelDigest: "…", split: 3,
 *   edge: "http://127.0.0.1:8787" });
 * ```
 */
export async function createSession(options: SessionOptions): Promise<SplitSession> {
  const engine = options.engine ?? (options.model ? new RefEngine(options.model) : undefined);
  if (!engine) {
    throw new TandemError("bad_argument", "Cannot create a session: pass an engine or a model");
  }
  const { parts, config } = engine;
  const K = options.split;
  check(
    Number.isInteger(K) && K >= 1 && K < config.nLayers,
    "bad_argument",
    () => `Cannot create a session: split ${K} is not a layer 1..${config.nLayers - 1}`,
  );
  check(
    parts.embed && parts.layers[0] === 0 && parts.layers[1] >= K,
    "bad_argument",
    () =>
      `Cannot create a session split at ${K}: the device holds layers [${parts.layers}) ${
        parts.embed ? "" : "and no embedding"
      }`,
  );
  let digest = options.modelDigest;
  if (!digest) {
    if (!options.model) {
      throw new TandemError(
        "bad_argument",
        "Cannot create a session: pass modelDigest with an engine",
      );
    }
    digest = (await digestModel(options.model)).modelDigest;
    if (!digest) {
      throw new TandemError(
        "bad_argument",
        "Cannot create a session: a shard needs its modelDigest (from its manifest)",
      );
    }
  }
  const client = new EdgeClient(options.edge, {
    fetch: options.fetch,
    headers: options.headers,
    apiKey: options.apiKey,
    timeoutMs: options.timeoutMs,
  });
  const info = await client.openSession({
    model: options.modelId,
    split: K,
    digest,
    sampling: options.sampling,
  });
  return new SplitSession(options, engine, client, digest, info);
}
