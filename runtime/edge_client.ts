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
}

/** Options of {@linkcode EdgeClient}. */
export interface EdgeClientOptions {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Extra headers on every request (e.g. Authorization). */
  headers?: Record<string, string>;
}

/** Talks to one edge. */
export class EdgeClient {
  /** Base URL, without a trailing slash. */
  readonly base: string;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;

  /** Creates a client for the edge at `base` (e.g. "http://127.0.0.1:8787"). */
  constructor(base: string | URL, options: EdgeClientOptions = {}) {
    this.base = String(base).replace(/\/+$/, "");
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#headers = options.headers ?? {};
  }

  async #request(path: string, init: RequestInit): Promise<Response> {
    let res: Response;
    try {
      res = await this.#fetch(this.base + path, {
        ...init,
        headers: { ...this.#headers, ...(init.headers as Record<string, string>) },
      });
    } catch (e) {
      throw new TandemError(
        "network",
        `Cannot reach the edge at ${this.base}: ${(e as Error).message}`,
      );
    }
    if (res.ok) return res;
    const text = await res.text();
    let body: { error?: { code?: string; message?: string } } = {};
    try {
      body = JSON.parse(text);
    } catch { /* not JSON: reported below */ }
    const code = (body.error?.code ?? (res.status >= 500 ? "network" : "bad_request")) as ErrorCode;
    throw new TandemError(
      code,
      body.error?.message ?? `The edge answered ${res.status}: ${text.slice(0, 200)}`,
      {
        status: res.status,
      },
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
    const res = await this.#request("/v1/sessions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(req),
    });
    return await res.json() as SessionInfo;
  }

  /**
   * Sends a frame; calls `onToken` for each token as it arrives; returns the whole answer.
   *
   * @example
   * ```ts
   * import { EdgeClient } from "./edge_client.ts";
   * declare const frame: Uint8Array;
   * const reply = await new EdgeClient("http://127.0.0.1:8787").forward("id", frame, () => {});
   * ```
   */
  async forward(id: string, frame: Uint8Array, onToken: (t: ReplyToken) => void): Promise<Reply> {
    const res = await this.#request(`/v1/sessions/${encodeURIComponent(id)}/forward`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: frame as Uint8Array<ArrayBuffer>,
    });
    if (!res.body) throw new TandemError("network", "The edge answered without a body");
    try {
      return await readReply(res.body, onToken);
    } catch (e) {
      if (e instanceof TandemError) throw e;
      throw new TandemError("network", `Lost the edge's answer: ${(e as Error).message}`);
    }
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
      const res = await this.#request(`/v1/sessions/${encodeURIComponent(id)}`, {
        method: "DELETE",
      });
      await res.body?.cancel();
    } catch (e) {
      if (!(e instanceof TandemError && e.code === "session_not_found")) throw e;
    }
  }
}
