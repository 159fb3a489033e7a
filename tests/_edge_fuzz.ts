/**
 * Hostile-input fuzzing of the edge, shared by the fixed-seed tests (`edge_fuzz_test.ts`) and
 * the long run (`deno task bench fuzz`).
 *
 * Cases are fast-check *recipes*, turned into requests against the live state of an
 * in-process edge when they run (so a mutated frame can carry the session's real next
 * sequence number and reach the checks behind the decoder). Kinds: mutated frames (truncated,
 * wrong magic/version, lying lengths and shapes, NaN/Inf payloads, huge token counts, wrong
 * dtype, replayed or out-of-order sequence numbers, another key's or an unknown session),
 * exact retries, raw bytes, JSON bodies for `/v1/sessions` and `/v1/chat/completions`
 * (malformed, wrong types, oversized), and random methods, paths and credentials.
 *
 * The property: no answer is a 5xx; every failure is a JSON `{ error: { code, message } }`
 * without a stack trace; a pristine frame still gets 200; a retry gets the identical answer;
 * and the edge keeps serving (a fresh session answers after the run).
 *
 * @module
 */

import fc from "fast-check";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { digestModel, hexToBytes } from "../runtime/digest.ts";
import {
  encodeFrame,
  FLAG_EMBED,
  FLAG_NO_REPLY,
  FLAG_REPLAY,
  FLAG_STREAM,
  FLAG_TOKENS,
  WIRE_DTYPES,
} from "../runtime/wire.ts";
import type { WireDtype } from "../runtime/wire_payload.ts";
import { createEdgeApp, type EdgeApp } from "../edge/app.ts";
import { uuidBytes } from "../edge/split_forward.ts";
import { mutate, type Mutation, mutation, rowsFor } from "./_wire_fuzz.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const ID = "stories260K";
/** The key that owns the fuzzed sessions, and a second key. */
export const KEYS = ["fuzz-key-owner-0000000", "fuzz-key-other-1111111"];
const MAX_TOKENS = 32;
const MAX_BODY = 32 * 1024;

/** One generated case. */
export type FuzzCase =
  | {
    kind: "frame";
    target: "own" | "other" | "unknown" | "garbage";
    garbage: string;
    n: number;
    dtype: WireDtype;
    flags: number;
    topK: number;
    seqDelta: number;
    posDelta: number;
    rowSeed: number;
    mutations: readonly Mutation[];
  }
  | { kind: "retry"; altered: boolean }
  | { kind: "raw"; method: string; path: string; body?: Uint8Array; auth: string }
  | { kind: "json"; route: "open" | "chat"; body: string; auth: string };

const auth = fc.oneof(
  { weight: 8, arbitrary: fc.constant("owner") },
  { weight: 1, arbitrary: fc.constantFrom("none", "other", "Bearer nope", "Basic eA==", "Bearer") },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);

const frameCase = fc.record({
  kind: fc.constant("frame" as const),
  target: fc.constantFrom(
    "own",
    "own",
    "own",
    "own",
    "own",
    "other",
    "unknown",
    "garbage",
  ) as fc.Arbitrary<"own" | "other" | "unknown" | "garbage">,
  garbage: fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom("%", "%zz", "..", "%2F", "a/b")),
  n: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }) }, {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: MAX_TOKENS + 2 }),
  }),
  dtype: fc.constantFrom(...WIRE_DTYPES),
  flags: fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        FLAG_NO_REPLY,
        FLAG_TOKENS,
        FLAG_NO_REPLY | FLAG_REPLAY,
        FLAG_EMBED,
        FLAG_EMBED | FLAG_NO_REPLY | FLAG_REPLAY,
      ),
    },
    { weight: 1, arbitrary: fc.nat(0xffff) },
  ),
  topK: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(255) }),
  seqDelta: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, {
    weight: 1,
    arbitrary: fc.integer({ min: -3, max: 3 }),
  }),
  posDelta: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, {
    weight: 1,
    arbitrary: fc.integer({ min: -5, max: 5 }),
  }),
  rowSeed: fc.nat(),
  mutations: fc.oneof(
    { weight: 2, arbitrary: fc.constant([]) },
    { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
  ),
});

const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record({
    model: fc.oneof(fc.constant(ID), fc.string({ maxLength: 12 }), fc.integer()),
    split: fc.oneof(fc.integer({ min: -2, max: 7 }), fc.double(), fc.string({ maxLength: 3 })),
    digest: fc.oneof(fc.constant("DIGEST"), fc.string({ maxLength: 70 }), fc.constant(null)),
    sampling: fc.option(
      fc.record({
        temperature: fc.oneof(fc.double(), fc.string({ maxLength: 3 })),
        topK: fc.oneof(fc.integer(), fc.double()),
        topP: fc.double(),
        seed: fc.oneof(fc.integer(), fc.double()),
      }, { requiredKeys: [] }),
      { nil: undefined },
    ),
  }, { requiredKeys: [] }),
  fc.record({
    model: fc.oneof(fc.constant(ID), fc.string({ maxLength: 12 })),
    messages: fc.oneof(
      fc.array(
        fc.record({
          role: fc.oneof(fc.constant("user"), fc.string({ maxLength: 8 })),
          content: fc.oneof(
            fc.string({ maxLength: 40 }),
            fc.array(fc.record({ type: fc.string({ maxLength: 6 }), text: fc.anything() })),
            fc.anything(),
          ),
        }, { requiredKeys: [] }),
        { maxLength: 3 },
      ),
      fc.anything(),
    ),
    max_tokens: fc.oneof(
      fc.integer({ min: -3, max: 6 }),
      fc.double(),
      fc.constant(1e12),
      fc.string({ maxLength: 3 }),
    ),
    temperature: fc.oneof(fc.double(), fc.constant(0)),
    top_p: fc.double(),
    seed: fc.oneof(fc.integer(), fc.double()),
    stream: fc.oneof(fc.boolean(), fc.anything()),
  }, { requiredKeys: [] }),
);
const jsonText = fc.oneof(
  { weight: 6, arbitrary: jsonValue.map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 1, arbitrary: fc.constantFrom("{", "[1,", '{"model":', "nul", "", "\u0000") },
  {
    weight: 1,
    arbitrary: fc.integer({ min: MAX_BODY - 8, max: MAX_BODY + 64 }).map((n) =>
      `"${"x".repeat(n)}"`
    ),
  },
);

/** The arbitrary of cases. */
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  { weight: 10, arbitrary: frameCase },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("retry" as const), altered: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("raw" as const),
      method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"),
      path: fc.oneof(
        fc.constantFrom(
          "/",
          "/healthz",
          "/v1/models",
          "/v1/sessions",
          "/v1/sessions/SESSION",
          "/v1/sessions/SESSION/forward",
          "/v1/chat/completions",
          "/v1/sessions//forward",
          "/v1/../healthz",
        ),
        fc.string({ maxLength: 30 }).map((s) => "/v1/sessions/" + encodeURIComponent(s)),
        fc.webPath(),
      ),
      body: fc.option(fc.uint8Array({ maxLength: 200 }), { nil: undefined }),
      auth,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("json" as const),
      route: fc.constantFrom("open", "chat") as fc.Arbitrary<"open" | "chat">,
      body: jsonText,
      auth,
    }),
  },
);

/** The running edge and its fuzzed sessions. */
export interface FuzzTarget {
  edge: EdgeApp;
  digest: string;
  /** Runs one case; returns a problem (a bug) or undefined, and the status. */
  run(c: FuzzCase): Promise<{ status: number; problem?: string }>;
  /** A fresh session still opens and answers a valid frame (the edge keeps serving). */
  stillServes(): Promise<boolean>;
  dispose(): void;
}

const STACK = /\bat .*\.(ts|js):\d+|\n\s+at /;

/** Checks an answer's shape; returns a problem or undefined. */
async function checkAnswer(
  res: Response,
  expectOk: boolean,
  head = false,
): Promise<string | undefined> {
  const text = await res.text();
  if (res.status >= 500) return `status ${res.status}: ${text.slice(0, 300)}`;
  if (head) return undefined; // HEAD answers carry no body
  if (expectOk && res.status !== 200) {
    return `a valid frame got ${res.status}: ${text.slice(0, 300)}`;
  }
  if (res.ok) return undefined;
  let body: { error?: { code?: unknown; message?: unknown } };
  try {
    body = JSON.parse(text);
  } catch {
    return `status ${res.status} with a non-JSON body: ${text.slice(0, 200)}`;
  }
  if (typeof body.error?.code !== "string" || typeof body.error?.message !== "string") {
    return `status ${res.status} without { error: { code, message } }: ${text.slice(0, 200)}`;
  }
  if (STACK.test(body.error.message)) return `a stack trace reached the client: ${text}`;
  return undefined;
}

/**
 * Starts an in-process edge (API keys on, small limits) with sessions to fuzz.
 *
 * @example
 * ```ts
 * import fc from "fast-check";
 * import { fuzzCase, startFuzzTarget } from "./_edge_fuzz.ts";
 * const t = await startFuzzTarget();
 * for (const c of fc.sample(fuzzCase, { seed: 1, numRuns: 10 })) await t.run(c);
 * t.dispose();
 * ```
 */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
  const tokenizer = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
  const digest = (await digestModel(model)).modelDigest!;
  const edge = await createEdgeApp({
    models: [{ id: ID, model, tokenizer }],
    apiKeys: KEYS,
    limits: {
      maxBodyBytes: MAX_BODY,
      maxTokensPerFrame: MAX_TOKENS,
      maxChatTokens: 4,
      ratePerSecond: 0,
      maxSessionsPerKey: 1000,
      streamHoldMs: 50, // a stream frame ahead of its predecessors waits this long, then 409
    },
    log: () => {},
  });
  const headers = (a: string): Record<string, string> => {
    if (a === "owner") return { authorization: `Bearer ${KEYS[0]}` };
    if (a === "other") return { authorization: `Bearer ${KEYS[1]}` };
    if (a === "none") return {};
    try {
      new Headers({ authorization: a });
      return { authorization: a };
    } catch {
      return {};
    }
  };
  const request = (path: string, init: RequestInit, a = "owner") =>
    edge.fetch(
      new Request(`http://edge.test${path}`, {
        ...init,
        headers: { ...headers(a), ...init.headers },
      }),
    );
  const openBody = (split: number) => JSON.stringify({ model: ID, split, digest });
  const open = async (split: number, a = "owner"): Promise<string> => {
    const res = await request("/v1/sessions", { method: "POST", body: openBody(split) }, a);
    if (res.status !== 201) throw new Error(`cannot open a session: ${await res.text()}`);
    return (await res.json()).id;
  };
  let own = await open(2);
  const other = await open(2, "other");
  let lastOk: { bytes: Uint8Array<ArrayBuffer>; body: string } | undefined;
  const state = () => edge.sessions.has(own) ? edge.sessions.get(own, "key0") : undefined;

  async function runFrame(c: Extract<FuzzCase, { kind: "frame" }>) {
    let s = state();
    if (!s || s.length > 512 - 2 * MAX_TOKENS) {
      own = await open(2);
      lastOk = undefined;
      s = state()!;
    }
    const seq = Math.max(0, s.nextSeq + c.seqDelta);
    const pos = Math.max(0, s.length + c.posDelta);
    const id = c.target === "own" ? own : c.target === "other" ? other : crypto.randomUUID();
    const embed = (c.flags & FLAG_EMBED) !== 0; // token prefill (wire 1.2): ids, no rows
    const drafts = c.flags & (FLAG_TOKENS | FLAG_EMBED)
      ? Uint32Array.from({ length: c.n }, (_, i) => (c.rowSeed + i) % (embed ? 512 : 600))
      : undefined;
    let bytes: Uint8Array = encodeFrame({
      dtype: c.dtype,
      topK: c.topK,
      flags: c.flags,
      split: 2,
      dim: 64,
      pos,
      seq,
      modelId: ID,
      session: uuidBytes(id),
      digest: hexToBytes(digest),
      tokens: drafts,
      rows: embed ? new Float32Array(0) : rowsFor(c.rowSeed, c.n * 64),
    });
    for (const m of c.mutations) bytes = mutate(bytes, m, c.n, c.dtype, 64);
    const path = `/v1/sessions/${
      c.target === "garbage" ? encodeURIComponent(c.garbage) : id
    }/forward`;
    const res = await request(path, { method: "POST", body: bytes as Uint8Array<ArrayBuffer> });
    // A stream frame (wire 1.1) must be one row with its token, expecting an answer.
    const badStream = (c.flags & FLAG_STREAM) !== 0 &&
      (c.n !== 1 || !(c.flags & FLAG_TOKENS) || (c.flags & FLAG_NO_REPLY) !== 0);
    // Token prefill continues only a token prefill from position 0; never with drafts.
    const badEmbed = embed && (pos !== 0 || (c.flags & (FLAG_TOKENS | FLAG_STREAM)) !== 0);
    const expectOk = c.target === "own" && c.mutations.length === 0 && c.seqDelta === 0 &&
      c.posDelta <= 0 && c.n <= MAX_TOKENS && pos + c.n <= 512 && !badStream && !badEmbed;
    const status = res.status;
    if (status === 200) {
      const body = await res.clone().text();
      if (c.target === "own") lastOk = { bytes: bytes as Uint8Array<ArrayBuffer>, body };
    }
    return { status, problem: await checkAnswer(res, expectOk) };
  }

  async function runRetry(altered: boolean) {
    if (!lastOk) return { status: 0 };
    const bytes = lastOk.bytes.slice();
    if (altered) bytes[bytes.length - 1] ^= 1; // same sequence number, another frame
    const res = await request(`/v1/sessions/${own}/forward`, { method: "POST", body: bytes });
    const text = await res.text();
    let problem: string | undefined;
    if (!altered && !(res.status === 200 && text === lastOk.body)) {
      problem = `a retried frame got ${res.status} and a different answer: ${text.slice(0, 200)}`;
    }
    if (altered && res.status !== 409 && res.status !== 400) {
      problem = `another frame under a used sequence number got ${res.status}: ${
        text.slice(0, 200)
      }`;
    }
    return { status: res.status, problem };
  }

  return {
    edge,
    digest,
    async run(c: FuzzCase) {
      if (c.kind === "frame") return await runFrame(c);
      if (c.kind === "retry") return await runRetry(c.altered);
      if (c.kind === "json") {
        const path = c.route === "open" ? "/v1/sessions" : "/v1/chat/completions";
        const body = c.body.replaceAll("DIGEST", digest);
        const res = await request(path, { method: "POST", body }, c.auth);
        if (res.status === 201) {
          const id = (await res.clone().json()).id;
          await request(`/v1/sessions/${id}`, { method: "DELETE" }, c.auth);
        }
        return { status: res.status, problem: await checkAnswer(res, false) };
      }
      const path = c.path.replaceAll("SESSION", own);
      let res: Response;
      try {
        const bodyOk = c.body !== undefined && c.method !== "GET" && c.method !== "HEAD";
        res = await request(path, {
          method: c.method,
          body: bodyOk ? c.body as Uint8Array<ArrayBuffer> : undefined,
        }, c.auth);
      } catch (e) {
        // new Request() refused the URL itself: nothing reached the edge.
        if (e instanceof TypeError) return { status: 0 };
        throw e;
      }
      if (c.method === "DELETE" && path.includes(own) && res.status === 204) lastOk = undefined;
      return { status: res.status, problem: await checkAnswer(res, false, c.method === "HEAD") };
    },
    async stillServes() {
      const id = await open(3);
      const bytes = encodeFrame({
        dtype: "f32",
        split: 3,
        dim: 64,
        pos: 0,
        seq: 0,
        modelId: ID,
        session: uuidBytes(id),
        digest: hexToBytes(digest),
        rows: rowsFor(7, 64),
      });
      const res = await request(`/v1/sessions/${id}/forward`, {
        method: "POST",
        body: bytes as Uint8Array<ArrayBuffer>,
      });
      const ok = res.status === 200 && (await res.text()).includes('"done":true');
      await request(`/v1/sessions/${id}`, { method: "DELETE" });
      return ok;
    },
    dispose: () => edge.dispose(),
  };
}
