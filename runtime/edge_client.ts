/**
 * The device's HTTP client for an edge (see `edge/app.ts` for the routes). Uses `fetch` only,
 * so it runs on every host; pass your own `fetch` to test against an app in process.
 *
 * Failures arrive as {@linkcode TandemError}s: the edge's own `{ error: { code, message } }`
 * keeps its code (e.g. `session_not_found`, `model_mismatch`); a request that never got an
 * answer is `network`.
 *
 * @example
 * ```ts
 * import { EdgeClient } from "./edge_client.ts";
 * const edge = new EdgeClient("http://127.0.0.1:8787");
 * const info = await edge.openSession({ model: "stories260K", split: 2, digest: "…" });
 * await edge.closeSession(info.id);
 * ```
 *
 * @module
 */

import { type ErrorCode, TandemError } from "./errors.ts";
import type { SamplerOptions } from "./sampling.ts";
import { readReply, type Reply, type ReplyToken } from "./wire_reply.ts";

/** What `POST /v1/sessions` asks for. */
export interface OpenSessionRequest {
  /** Model id. */
  model: string;
  /** Split layer K. */
  split: number;
  /** The device's weights digest of the whole model (hex). */
  digest: string;
  /** Sampling on the edge (greedy when absent). */
  sampling?: SamplerOptions;
}

/** What `POST /v1/sessions` answers. */
export interface SessionInfo {
  /** Session id (a UUID). */
  id: string;
  /** Model id. */
  model: string;
  /** Split layer K. */
  split: number;
  /** Layers the edge runs. */
  layers: [number, number];
  /** Most rows a frame may carry. */
  maxTokensPerFrame: number;
  /** Idle time after which the edge drops the session. */
  ttlMs: number;
  /** Wire version the edge speaks, "major.minor". */
  wire: string;
  /**
   * Draft streaming (wire 1.1): how many stream frames the edge holds per session while
   * their predecessors are on the way, and for how long. Absent: the edge cannot stream.
   */
  stream?: { maxHeld: number; holdMs: number };
  /**
   * Token prefill (wire 1.2): the edge takes a prompt as token ids (`FLAG_EMBED`) and runs the
   * whole model over it. Absent or false: send the prompt's rows.
   */
  tokenPrefill?: boolean;
}

/** Options of {@linkcode EdgeClient}. */
export interface EdgeClientOptions {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** The edge's API key, sent as `Authorization: Bearer <key>` (never put in messages). */
  apiKey?: string;
  /**
   * Milliseconds one request may take, answer included, before it fails as `network`
   * (default 30000; 0 = no limit).
   */
  timeoutMs?: number;
}

/** Talks to one edge. */
export class EdgeClient {
  /** Base URL, without a trailing slash. */
  readonly base: string;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  /** Creates a client for the edge at `base` (e.g. "http://127.0.0.1:8787"). */
  constructor(base: string | URL, options: EdgeClientOptions = {}) {
    this.base = String(base).replace(/\/+$/, "");
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#headers = { ...options.headers };
    if (options.apiKey) this.#headers.authorization = `Bearer ${options.apiKey}`;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Runs `use` with a signal that aborts after the timeout (none when it is 0). */
  async #timed<T>(use: (signal?: AbortSignal) => Promise<T>): Promise<T> {
    if (!this.#timeoutMs) return await use();
    const ac = new AbortController();
    const timer = setTimeout(
      () => ac.abort(new Error(`no answer within ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    try {
      return await use(ac.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  async #request(path: string, init: RequestInit): Promise<Response> {
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(this.base + path, {
        ...init,
        headers: { ...this.#headers, ...(init.headers as Record<string, string>) },
      });
      if (res.ok) return res;
      text = await res.text();
    } catch (e) {
      throw new TandemError(
        "network",
        `Cannot reach the edge at ${this.base}: ${(e as Error)?.message ?? e}`,
      );
    }
    let body: { error?: { code?: string; message?: string } } = {};
    try {
      body = JSON.parse(text);
    } catch { /* not JSON: reported below */ }
    const code = (body.error?.code ?? (res.status >= 500 ? "network" : "bad_request")) as ErrorCode;
    throw new TandemError(
      code,
      body.error?.message ?? `The edge answered ${res.status}: ${text.slice(0, 200)}`,
      { status: res.status, ...retryAfter(res.headers.get("retry-after")) },
    );
  }

  /**
   * Opens a split session. Throws `model_mismatch` when the edge holds another model.
   *
   * @example
   * ```ts
   * import { EdgeClient } from "./edge_client.ts";
   * const info = await new EdgeClient("http://127.0.0.1:8787")
   *   .openSession({ model: "m", split: 1, digest: "00" });
   * ```
   */
  async openSession(req: OpenSessionRequest): Promise<SessionInfo> {
    return await this.#timed(async (signal) => {
      const res = await this.#request("/v1/sessions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(req),
        signal,
      });
      try {
        return await res.json() as SessionInfo;
      } catch (e) {
        throw new TandemError("network", `Lost the edge's answer: ${(e as Error)?.message ?? e}`);
      }
    });
  }

  /**
   * Sends a frame (bytes, or a stream of them: see `pipelined_frame.ts`); calls `onToken` for
   * each token as it arrives; returns the whole answer.
   *
   * @example
   * ```ts
   * import { EdgeClient } from "./edge_client.ts";
   * declare const frame: Uint8Array;
   * const reply = await new EdgeClient("http://127.0.0.1:8787").forward("id", frame, () => {});
   * ```
   */
  async forward(
    id: string,
    frame: Uint8Array | ReadableStream<Uint8Array>,
    onToken: (t: ReplyToken) => void,
  ): Promise<Reply> {
    return await this.#timed(async (signal) => {
      const streamed = frame instanceof ReadableStream;
      const res = await this.#request(`/v1/sessions/${encodeURIComponent(id)}/forward`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: frame as Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>,
        signal,
        // A streamed frame (pipelined prefill) is sent while it is computed.
        ...(streamed ? { duplex: "half" } as RequestInit : {}),
      });
      if (!res.body) throw new TandemError("network", "The edge answered without a body");
      try {
        return await readReply(res.body, onToken);
      } catch (e) {
        if (e instanceof TandemError) throw e;
        throw new TandemError("network", `Lost the edge's answer: ${(e as Error)?.message ?? e}`);
      }
    });
  }

  /**
   * Closes a session (a session the edge no longer holds counts as closed).
   *
   * @example
   * ```ts
   * import { EdgeClient } from "./edge_client.ts";
   * await new EdgeClient("http://127.0.0.1:8787").closeSession("id");
   * ```
   */
  async closeSession(id: string): Promise<void> {
    try {
      await this.#timed(async (signal) => {
        const res = await this.#request(`/v1/sessions/${encodeURIComponent(id)}`, {
          method: "DELETE",
          signal,
        });
        await res.body?.cancel();
      });
    } catch (e) {
      if (!(e instanceof TandemError && e.code === "session_not_found")) throw e;
    }
  }
}

/** `{ retryAfterSeconds }` from a Retry-After header in seconds (dates are ignored). */
function retryAfter(header: string | null): { retryAfterSeconds?: number } {
  const seconds = Number(header ?? NaN);
  return Number.isFinite(seconds) && seconds >= 0 ? { retryAfterSeconds: seconds } : {};
}
