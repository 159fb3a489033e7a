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

import { rowsFlops } from "./cost.ts";
import { digestModel } from "./digest.ts";
import { EdgeClient, type SessionInfo } from "./edge_client.ts";
import type { Engine, KVCache } from "./engine.ts";
import { check, TandemError } from "./errors.ts";
import { RefEngine } from "./forward.ts";
import type { ModelConfig } from "./model.ts";
import { FLAG_NO_REPLY, FLAG_TOKENS, type WireDtype } from "./wire.ts";
import { streamedFrame } from "./pipelined_frame.ts";
import type { ReplyToken } from "./wire_reply.ts";
import { BoundaryHistory } from "./session_frames.ts";
import {
  newSessionStats,
  type SessionOptions,
  type SessionStats,
  type SplitGenerateOptions,
  type StreamPort,
} from "./session_options.ts";
import { SessionTransport } from "./session_transport.ts";
import { nextTask } from "./draft_stream.ts";

export type {
  SessionOptions,
  SessionStats,
  SplitGenerateOptions,
  StreamPort,
} from "./session_options.ts";

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
  readonly stats: SessionStats = newSessionStats();
  /** The last answer's tokens, with logprobs when asked for. */
  lastTokens: ReplyToken[] = [];
  /**
   * How the last prompt went: `tokens` (token prefill, wire 1.2), `rows` (one frame),
   * `pipelined` (rows in chunks, `pipelineRows`), or `refused` (token prefill was asked for and
   * the edge refused it: rows went instead).
   */
  lastPrefill?: "tokens" | "rows" | "pipelined" | "refused";
  readonly #o: SessionOptions;
  readonly #engine: Engine;
  readonly #cache: KVCache;
  readonly #history: BoundaryHistory;
  readonly #transport: SessionTransport;
  #length = 0; // positions the device holds
  #unfed: number[] = []; // tokens yielded but not yet run (the last one of a generation)

  /** Use {@linkcode createSession}. */
  constructor(
    o: SessionOptions,
    engine: Engine,
    client: EdgeClient,
    digest: string,
    info: SessionInfo,
  ) {
    this.#o = o;
    this.config = engine.config;
    this.split = o.split;
    this.wire = o.wire ?? "f32";
    this.prefillWire = o.prefillWire ?? this.wire;
    this.#engine = engine;
    this.#cache = engine.createCache([0, o.split]);
    const c = engine.config;
    this.#history = new BoundaryHistory(c.maxSeqLen, c.dim, this.wire, this.prefillWire);
    this.#transport = new SessionTransport(
      {
        topK: 0,
        maxRecoveries: 3,
        retries: 2,
        ...o,
      },
      client,
      digest,
      info,
      this.#history,
      this.stats,
      c,
    );
  }

  /** The edge's current session id (changes when a lost session is rebuilt). */
  get id(): string {
    return this.#transport.info.id;
  }

  /** Positions of context held. */
  get length(): number {
    return this.#length;
  }

  /** Whether the edge takes prompts as token ids (its session answer's `tokenPrefill`). */
  get tokenPrefill(): boolean {
    return this.#transport.info.tokenPrefill === true;
  }

  /**
   * Runs `tokens` through [0, K) at the current position and sends them to the edge.
   * Returns the edge's answer tokens: the next token; or, with `draft: true` (the tokens
   * after the first are drafts), the accepted drafts and the next token — the session then
   * rolls back to what was accepted. Prompt chunks beyond `maxTokensPerFrame` go first as
   * `NO_REPLY` frames. With `extend` (self-speculation, one token only), the session drafts:
   * it calls `extend(row, drafted)` with the boundary row of the last token and runs the
   * token it returns, until it returns undefined; the frame then carries the drafts.
   *
   * With `tokenPrefill` (a prompt of more than one token that fits one frame, to an edge whose
   * session answer has `tokenPrefill`) the prompt goes as token ids (wire 1.2): the edge runs
   * the whole model over them while the device computes its own [0, K) cache meanwhile; an
   * edge that refuses (4xx) gets the rows instead. `pipeline: false` sends a prompt's rows in
   * one frame even when the session pipelines prompts (`pipelineRows`).
   */
  async step(
    tokens: readonly number[],
    options: {
      draft?: boolean;
      extend?: (row: Float32Array, drafted: number) => number | undefined;
      tokenPrefill?: boolean;
      pipeline?: boolean;
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
    const max = this.#transport.info.maxTokensPerFrame;
    const chunk = this.#o.pipelineRows ?? 0;
    const prefill = tokens.length > 1 && !options.draft && !options.extend;
    if (prefill) this.lastPrefill = "rows";
    if (prefill && options.tokenPrefill && this.tokenPrefill && tokens.length <= max) {
      return await this.#tokenPrefill(tokens, pos, chunk > 0 ? chunk : 16);
    }
    if (
      prefill && chunk > 0 && options.pipeline !== false && tokens.length > chunk &&
      tokens.length <= max &&
      this.prefillWire !== "int8"
    ) {
      this.lastPrefill = "pipelined";
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
    this.#history.mark(pos, end, prefill);
    while (end - start > max) {
      await this.#transport.send(start, start + max, FLAG_NO_REPLY);
      start += max;
    }
    const draftTokens = options.draft ? Uint32Array.from(tokens) : undefined;
    const flags = options.draft ? FLAG_TOKENS : 0;
    const reply = await this.#transport.send(start, end, flags, draftTokens);
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
    this.#history.store(rows, pos);
    this.stats.deviceFlops += rowsFlops(this.config, this.split, pos, tokens.length);
    return rows;
  }

  /**
   * Token prefill: the prompt's ids go to the edge at once; meanwhile the device runs them
   * through [0, K) in chunks of `chunk` rows, yielding between chunks so the request goes out
   * and the answer is read while it computes. On a 4xx (an edge without [0, K), or an older
   * one) the rows computed here go as a plain prompt frame.
   */
  async #tokenPrefill(
    tokens: readonly number[],
    pos: number,
    chunk: number,
  ): Promise<ReplyToken[]> {
    const end = pos + tokens.length;
    this.#history.markTokens(pos, tokens);
    const sending = this.#transport.sendTokens(pos, end);
    sending.catch(() => {}); // awaited below
    for (let a = 0; a < tokens.length; a += chunk) {
      await nextTask();
      this.#run(tokens.slice(a, a + chunk), pos + a);
    }
    let reply;
    try {
      reply = await sending;
      this.lastPrefill = "tokens";
    } catch (e) {
      const refused = e instanceof TandemError &&
        ["bad_request", "bad_frame", "unsupported_version"].includes(e.code);
      if (!refused) throw e;
      this.#history.mark(pos, end, true);
      reply = await this.#transport.send(pos, end, 0);
      this.lastPrefill = "refused";
    }
    this.#length = end;
    this.stats.tokens += reply.tokens.length;
    this.lastTokens = reply.tokens;
    return reply.tokens;
  }

  /** A prompt sent as one frame streamed while its chunks are computed. */
  async #pipelined(tokens: readonly number[], pos: number, chunk: number): Promise<ReplyToken[]> {
    const end = pos + tokens.length;
    const streamed = streamedFrame(
      this.#transport.header(pos, 0, this.prefillWire),
      tokens.length,
      chunk,
      (a, b) => this.#run(tokens.slice(a, b), pos + a),
    );
    this.#history.mark(pos, end, true);
    const reply = await this.#transport.send(pos, end, 0, undefined, streamed);
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
    await this.#transport.close();
  }

  /** The hooks draft streaming (`draft_stream.ts`) drives this session with. */
  streamPort(): StreamPort {
    const t = this.#transport;
    return {
      stream: () => t.info.stream,
      run: (token, pos) => {
        const row = this.#run([token], pos);
        this.#history.mark(pos, pos + 1, false);
        return row;
      },
      post: (pos, token) => t.postStream(pos, token),
      resend: async (pos) => {
        await t.recover(pos); // the edge said it lost the session: no need to ask it again
        return await t.send(pos, pos + 1, 0);
      },
      held: (n) => void (this.#length = n),
    };
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
