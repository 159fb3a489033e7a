/**
 * The edge: a Hono app that runs layers [K, L) and the head for split sessions, keeping each
 * session's KV cache, and answers OpenAI-style chat completions with the whole model.
 *
 * | route                          | body in                  | answer                                   |
 * | ------------------------------ | ------------------------ | ---------------------------------------- |
 * | `POST /v1/sessions`            | JSON `{ model, split, digest, sampling? }` | 201 `{ id, model, split, layers, maxTokensPerFrame, ttlMs, wire, stream, tokenPrefill }` |
 * | `POST /v1/sessions/:id/forward`| a wire frame (`wire.ts`) | NDJSON token lines + closing line (`wire_reply.ts`) |
 * | `DELETE /v1/sessions/:id`      | —                        | 204                                      |
 * | `GET /v1/models`               | —                        | OpenAI-style list, with digest and layers |
 * | `GET /healthz`                 | —                        | `{ ok, sessions, kvBytes }`              |
 * | `POST /v1/chat/completions`    | OpenAI chat request      | OpenAI chat completion (SSE when `stream`) |
 * | `POST /v1/generate`            | JSON `{ model, tokens, max_tokens? }` | NDJSON token lines, streamed (`generate_route.ts`) |
 *
 * Every failure is a JSON `{ error: { code, message } }` with the status of `http_errors.ts`.
 * With `apiKeys`, every route but `/healthz` needs `Authorization: Bearer <key>` (`auth.ts`),
 * a session answers only the key that opened it, and each key has a request rate
 * (`rate_limit.ts`) and a session quota; docs/edge-security.md has the threat model.
 * The app touches no host API: serve it with `hosts/deno.ts`, `hosts/node.ts` or
 * `hosts/workerd.ts`, or call `app.request()` in tests.
 *
 * @example
 * ```ts
 * import { createEdgeApp } from "./app.ts";
 * import type { Model } from "../runtime/model.ts";
 * declare const model: Model;
 * const edge = await createEdgeApp({ models: [{ id: "stories260K", model }] });
 * const res = await edge.app.request("/healthz");
 * console.log(await res.json()); // { ok: true, sessions: 0, kvBytes: 0 }
 * ```
 *
 * @module
 */

import { Hono } from "hono";
import { TandemError } from "../runtime/errors.ts";
import { decodeFrame, FLAG_STREAM, WIRE_MAJOR, WIRE_MINOR } from "../runtime/wire.ts";
import { DraftStreams } from "./draft_stream.ts";
import { errorResponse } from "./http_errors.ts";
import { createKeyring } from "./auth.ts";
import { RateLimiter } from "./rate_limit.ts";
import { RetryGuard } from "./retry_guard.ts";
import { readJson } from "./body.ts";
import {
  type EdgeModel,
  type EdgeModelSpec,
  type EngineFactory,
  isWhole,
  prepareModels,
  splitProblem,
} from "./models.ts";
import { registerChat } from "./openai.ts";
import { registerGenerate } from "./generate_route.ts";
import { EdgeMetrics, type GenerationAccount, registerMetrics } from "./metrics.ts";
import { SessionStore } from "./sessions.ts";
import {
  type EdgeSession,
  newEdgeSession,
  runFrame,
  tokenPrefillProblem,
  uuidBytes,
} from "./split_forward.ts";
import { readFrameRunning } from "./streamed_forward.ts";

/** Limits of an edge. */
export interface EdgeLimits {
  /** Most sessions held at once (LRU eviction past it). Default 256. */
  maxSessions: number;
  /** Total KV-cache bytes of all sessions (LRU eviction past it). Default 256 MiB. */
  kvBudgetBytes: number;
  /** A session unused this long is dropped. Default 10 minutes. */
  ttlMs: number;
  /** Largest request body. Default 16 MiB. */
  maxBodyBytes: number;
  /** Most rows one frame may carry. Default 512. */
  maxTokensPerFrame: number;
  /** Most tokens one chat completion may produce. Default 1024. */
  maxChatTokens: number;
  /** Most sessions one API key may hold. Default 64 (unlimited on an open edge). */
  maxSessionsPerKey: number;
  /** Sustained requests per second per key (0 = unlimited). Default 100 (0 on an open edge). */
  ratePerSecond: number;
  /** Requests a key may make at once after being idle. Default 200. */
  rateBurst: number;
  /** Draft stream frames a session may have waiting for their predecessors. Default 32. */
  streamMaxHeld: number;
  /** Longest a draft stream frame waits for its predecessors, ms. Default 10000. */
  streamHoldMs: number;
}

/** Options of {@linkcode createEdgeApp}. */
export interface EdgeOptions {
  /** The models served (whole models or edge shards). */
  models: EdgeModelSpec[];
  /** Builds each model's engine (default: the reference engine). */
  engine?: EngineFactory;
  /** Limits (defaults above). */
  limits?: Partial<EdgeLimits>;
  /**
   * The price this edge advertises for one FLOP (any currency unit), published in `/metrics`
   * as `tandem_edge_price_per_flop` for devices' routers (`EdgeMonitor`). Default: none.
   */
  pricePerFlop?: number;
  /** Clock for session TTLs (default Date.now). */
  now?: () => number;
  /** Where unexpected errors are reported (default console.error); never sent to clients. */
  log?: (e: unknown) => void;
  /**
   * Bearer API keys (≥ 16 characters each) accepted on every route but `/healthz`. None
   * (the default) = an open edge, for loopback development. Hosts read `TANDEM_API_KEYS`.
   */
  apiKeys?: readonly string[];
}

/** The routing core of an edge (a Hono app), as embedders and tests use it. */
export interface EdgeRouter {
  /** Handles a request given as a path (resolved against http://localhost), URL or Request. */
  request(input: string | URL | Request, init?: RequestInit): Response | Promise<Response>;
  /** Handles a request (what a host serves). */
  fetch(request: Request): Response | Promise<Response>;
}

/** A ready edge. */
export interface EdgeApp {
  /** The Hono app behind the edge. */
  app: EdgeRouter;
  /** The fetch handler (what a host serves). */
  fetch: (request: Request) => Promise<Response>;
  /** The session table (for metrics and tests). */
  sessions: SessionStore<EdgeSession>;
  /** The models served, by id. */
  models: Map<string, EdgeModel>;
  /** The limits in force. */
  limits: EdgeLimits;
  /** True when no API keys are configured: anyone who reaches the edge may use it. */
  open: boolean;
  /** The per-key rate limiter (for metrics and tests). */
  rateLimiter: RateLimiter;
  /** Frees the engines. */
  dispose(): void;
}

const DEFAULT_LIMITS: EdgeLimits = {
  maxSessions: 256,
  kvBudgetBytes: 256 * 2 ** 20,
  ttlMs: 10 * 60_000,
  maxBodyBytes: 16 * 2 ** 20,
  maxTokensPerFrame: 512,
  maxChatTokens: 1024,
  maxSessionsPerKey: 64,
  ratePerSecond: 100,
  rateBurst: 200,
  streamMaxHeld: 32,
  streamHoldMs: 10_000,
};

interface OpenRequest {
  model: string;
  split: number;
  digest: string;
  sampling?: { temperature?: number; topK?: number; topP?: number; seed?: number };
}

function checkOpen(v: unknown): OpenRequest {
  const o = v as Partial<OpenRequest>;
  const bad = (why: string) => new TandemError("bad_request", `Cannot open session: ${why}`);
  if (!o || typeof o !== "object") throw bad("the body must be a JSON object");
  if (typeof o.model !== "string") throw bad("`model` must be a string");
  if (!Number.isInteger(o.split)) throw bad("`split` must be an integer layer");
  if (typeof o.digest !== "string") {
    throw bad("`digest` (the device's model weights digest) is required");
  }
  if (o.sampling !== undefined && (typeof o.sampling !== "object" || o.sampling === null)) {
    throw bad("`sampling` must be an object");
  }
  return o as OpenRequest;
}

/**
 * Builds an edge app over the given models (digests them and builds their engines).
 *
 * @example
 * ```ts
 * import { createEdgeApp } from "./app.ts";
 * import type { Model } from "../runtime/model.ts";
 * declare const model: Model;
 * const edge = await createEdgeApp({ models: [{ id: "m", model }], limits: { ttlMs: 60_000 } });
 * Deno.serve({ port: 8787 }, edge.fetch);
 * ```
 */
export async function createEdgeApp(options: EdgeOptions): Promise<EdgeApp> {
  const keyed = (options.apiKeys ?? []).length > 0;
  // An open edge has one anonymous user: per-key limits would throttle everyone together.
  const openDefaults = keyed ? {} : { ratePerSecond: 0, maxSessionsPerKey: Infinity };
  const limits = { ...DEFAULT_LIMITS, ...openDefaults, ...options.limits };
  const log = options.log ?? ((e: unknown) => console.error("edge: unexpected error:", e));
  if (
    options.pricePerFlop !== undefined &&
    !(Number.isFinite(options.pricePerFlop) && options.pricePerFlop >= 0)
  ) {
    throw new TandemError(
      "bad_argument",
      `Cannot start the edge: pricePerFlop must be a finite number ≥ 0, got ${options.pricePerFlop}`,
    );
  }
  const models = await prepareModels(options.models, options.engine);
  const keyring = await createKeyring(options.apiKeys ?? []);
  const rateLimiter = new RateLimiter(
    { perSecond: limits.ratePerSecond, burst: limits.rateBurst },
    options.now,
  );
  const principals = new WeakMap<Request, string>();
  const retries = new RetryGuard<EdgeSession>();
  const principal = (request: Request): string => principals.get(request) ?? "";
  const metrics = new EdgeMetrics();
  const streams = new DraftStreams(
    {
      maxHeld: limits.streamMaxHeld,
      holdMs: limits.streamHoldMs,
      window: 2 * limits.streamMaxHeld,
    },
    (s, f, bytes, body, ms) => metrics.frame(s, f, bytes, body, f.seq, ms),
  );
  // A dropped session's held stream frames are answered at once, not at their hold timeout.
  const sessions = new SessionStore<EdgeSession>(
    { maxSessions: limits.maxSessions, budgetBytes: limits.kvBudgetBytes, ttlMs: limits.ttlMs },
    options.now,
    (s) => streams.forget(s),
  );
  const app = new Hono();
  app.onError((e) => errorResponse(e, log));
  app.notFound((c) =>
    errorResponse(
      new TandemError("not_found", `No route ${c.req.method} ${new URL(c.req.url).pathname}`),
    )
  );

  // Authentication, then the key's rate, before any body is read.
  app.use("*", async (c, next) => {
    if (c.req.path === "/healthz") return await next();
    try {
      const who = await keyring.identify(c.req.header("authorization"));
      rateLimiter.take(who);
      principals.set(c.req.raw, who);
    } catch (e) {
      const res = errorResponse(e, log);
      if (res.status === 401) res.headers.set("www-authenticate", 'Bearer realm="tandem"');
      return res;
    }
    await next();
  });

  app.get(
    "/healthz",
    (c) => c.json({ ok: true, sessions: sessions.size, kvBytes: sessions.totalBytes }),
  );

  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [...models.values()].map((m) => ({
        id: m.id,
        object: "model",
        created: 0,
        owned_by: "tandem",
        digest: m.digest,
        layers: m.parts.layers,
        nLayers: m.config.nLayers,
        dim: m.config.dim,
        chat: isWhole(m) && !!m.tokenizer,
      })),
    }));

  app.post("/v1/sessions", async (c) => {
    const req = checkOpen(await readJson(c.req.raw, limits.maxBodyBytes));
    const m = models.get(req.model);
    if (!m) {
      throw new TandemError(
        "not_found",
        `Cannot open session: this edge does not serve model ${req.model}`,
      );
    }
    if (req.digest !== m.digest) {
      throw new TandemError(
        "model_mismatch",
        `Cannot open session: the device's weights digest ${
          req.digest.slice(0, 16)
        }… differs from the edge's ${
          m.digest.slice(0, 16)
        }… for ${m.id}; the two halves are different models`,
      );
    }
    const problem = splitProblem(m, req.split);
    if (problem) throw new TandemError("bad_request", `Cannot open session: ${problem}`);
    const owner = principal(c.req.raw);
    if (sessions.countOwned(owner) >= limits.maxSessionsPerKey) {
      throw new TandemError(
        "rate_limited",
        `Cannot open session: this key holds ${limits.maxSessionsPerKey} sessions, the most allowed; close one (DELETE) or let one expire (${
          Math.round(limits.ttlMs / 1000)
        } s idle)`,
      );
    }
    const id = sessions.add(newEdgeSession(m, req.split, req.sampling ?? {}), owner);
    return c.json({
      id,
      model: m.id,
      split: req.split,
      layers: [req.split, m.config.nLayers],
      maxTokensPerFrame: limits.maxTokensPerFrame,
      ttlMs: limits.ttlMs,
      wire: `${WIRE_MAJOR}.${WIRE_MINOR}`,
      stream: { maxHeld: limits.streamMaxHeld, holdMs: limits.streamHoldMs },
      // Wire 1.2: prompts may come as token ids (`EMBED`) when this edge holds [0, K) too.
      tokenPrefill: tokenPrefillProblem(m) === undefined,
    }, 201);
  });

  app.post("/v1/sessions/:id/forward", async (c) => {
    const id = c.req.param("id");
    const idBytes = uuidBytes(id);
    const decodeLimits = { maxTokens: limits.maxTokensPerFrame, maxDim: 1 << 16 };
    // A streamed prompt frame runs batch by batch as its rows arrive (`streamed_forward.ts`).
    let early: EdgeSession | undefined;
    try {
      early = sessions.get(id, principal(c.req.raw));
    } catch {
      early = undefined; // reported below, after the frame is read, as before
    }
    const { bytes, early: ran } = await readFrameRunning(
      c.req.raw,
      limits.maxBodyBytes,
      early,
      idBytes,
      decodeLimits,
    );
    const frame = decodeFrame(bytes, decodeLimits);
    const session = sessions.get(id, principal(c.req.raw));
    const ndjson = { headers: { "content-type": "application/x-ndjson" } };
    if ((frame.flags ?? 0) & FLAG_STREAM) {
      // A draft stream row: run in sequence order, held until its predecessors have run.
      const answer = await streams.submit(session, frame, bytes, idBytes);
      sessions.charge(id);
      return new Response(answer, ndjson);
    }
    retries.check(session, frame.seq, session.nextSeq, bytes);
    const seq = session.nextSeq;
    const t0 = performance.now();
    const body = runFrame(session, frame, idBytes, session === early ? ran : undefined);
    const ms = performance.now() - t0;
    if (session.nextSeq !== seq) retries.record(session, frame.seq, bytes);
    metrics.frame(session, frame, bytes.byteLength, body, seq, ms);
    streams.drain(session); // stream rows that arrived before this frame
    sessions.charge(id);
    // The compute time, so a device's network estimator does not count it as the link's.
    return new Response(body, {
      headers: { ...ndjson.headers, "server-timing": `edge;dur=${ms.toFixed(2)}` },
    });
  });

  app.delete("/v1/sessions/:id", (c) => {
    const id = c.req.param("id");
    const owner = principal(c.req.raw);
    if (!sessions.delete(id, owner)) sessions.get(id, owner); // throws session_not_found
    return c.body(null, 204);
  });

  const account: GenerationAccount = (...a) => metrics.generation(...a);
  registerChat(app, models, limits, account);
  registerGenerate(app, models, limits, account);
  registerMetrics(app, metrics, () => ({
    sessions: sessions.size,
    kvBytes: sessions.totalBytes,
    pricePerFlop: options.pricePerFlop,
  }));

  return {
    app,
    fetch: async (request: Request) => await app.fetch(request),
    sessions,
    models,
    limits,
    open: keyring.open,
    rateLimiter,
    dispose: () => {
      streams.dispose();
      sessions.clear();
      for (const m of models.values()) m.engine.dispose();
    },
  };
}
