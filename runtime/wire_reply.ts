/**
 * The edge's answer to a frame: newline-delimited JSON (`application/x-ndjson`), one line per
 * answered token as soon as it is known, then one closing line. A reader can act on each
 * token before the body ends, so a multi-token answer streams.
 *
 * | line    | fields                                                                         |
 * | ------- | ------------------------------------------------------------------------------ |
 * | token   | `token` id, `pos` (the position it will take), `logprob`?, `top`? = [[id, logprob], …] |
 * | closing | `done: true`, `seq` (echoed), `accepted` (draft rows accepted), `length` (positions the edge now holds), `edgeMs`; for a stream row (wire 1.1) `stale`? and `next`? |
 * | error   | `error: { code, message }` — the request failed after the answer began          |
 *
 * `logprob` and `top` are present when the frame asked for top-k logprobs (`topK > 0`).
 * For a frame flagged `NO_REPLY` only the closing line is sent. A frame with drafts
 * (`TOKENS`) answers the accepted draft tokens followed by the edge's own next token. A draft
 * stream row (`STREAM`) answers the token after it (`accepted: 1`), or, when the row is not on
 * the edge's verified branch, no token and `stale: true` with `next`, the token the edge holds
 * for position `length` — nothing was computed.
 *
 * @example
 * ```ts
 * import { encodeReplyLine, readReply } from "./wire_reply.ts";
 * const body = encodeReplyLine({ token: 7, pos: 3 }) +
 *   encodeReplyLine({ done: true, seq: 0, accepted: 0, length: 3, edgeMs: 0.1 });
 * const reply = await readReply(new Response(body).body!, () => {});
 * console.log(reply.tokens); // [{ token: 7, pos: 3 }]
 * ```
 *
 * @module
 */

import { type ErrorCode, TandemError } from "./errors.ts";

/** One answered token. */
export interface ReplyToken {
  /** Token id. */
  token: number;
  /** Position the token takes in the context. */
  pos: number;
  /** Log-probability of `token` (when top-k logprobs were asked for). */
  logprob?: number;
  /** The k most likely tokens with their log-probabilities, most likely first. */
  top?: [number, number][];
}

/** The closing line of an answer. */
export interface ReplyDone {
  /** Always true. */
  done: true;
  /** The frame's sequence number, echoed. */
  seq: number;
  /** How many draft rows the edge accepted (0 without drafts). */
  accepted: number;
  /** Positions the edge session holds after this frame. */
  length: number;
  /** Milliseconds the edge spent computing. */
  edgeMs: number;
  /** A draft stream row off the edge's verified branch: answered without computing. */
  stale?: boolean;
  /** With `stale`: the edge's token for position `length` (absent when it has none). */
  next?: number;
}

/** Any line of an answer. */
export type ReplyLine = ReplyToken | ReplyDone | { error: { code: ErrorCode; message: string } };

/** A whole answer, read. */
export interface Reply extends ReplyDone {
  /** The answered tokens, in order. */
  tokens: ReplyToken[];
  /** Bytes of the body. */
  bytes: number;
}

/**
 * Serialises one line (with its trailing newline).
 *
 * @example
 * ```ts
 * import { encodeReplyLine } from "./wire_reply.ts";
 * console.log(encodeReplyLine({ token: 1, pos: 0 })); // {"token":1,"pos":0}\n
 * ```
 */
export function encodeReplyLine(line: ReplyLine): string {
  return JSON.stringify(line) + "\n";
}

function parseLine(text: string): ReplyLine {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new TandemError(
      "bad_frame",
      `Cannot read edge reply: line is not JSON: ${text.slice(0, 80)}`,
    );
  }
  const o = v as Record<string, unknown>;
  if (o && typeof o === "object") {
    const e = o.error as { code?: unknown; message?: unknown } | undefined;
    if (e && typeof e.code === "string") {
      throw new TandemError(e.code as ErrorCode, String(e.message ?? "edge error"));
    }
    if (o.done === true && Number.isInteger(o.seq) && Number.isInteger(o.length)) {
      return o as unknown as ReplyDone;
    }
    if (Number.isInteger(o.token) && Number.isInteger(o.pos)) return o as unknown as ReplyToken;
  }
  throw new TandemError(
    "bad_frame",
    `Cannot read edge reply: unexpected line ${text.slice(0, 80)}`,
  );
}

/**
 * Reads an answer body line by line, calling `onToken` as each token line arrives; returns
 * the whole answer. Throws the edge's error as a {@linkcode TandemError}, or `bad_frame` for
 * a malformed or unterminated answer.
 *
 * @example
 * ```ts
 * import { readReply } from "./wire_reply.ts";
 * declare const res: Response;
 * const reply = await readReply(res.body!, (t) => console.log(t.token));
 * ```
 */
export async function readReply(
  body: ReadableStream<Uint8Array>,
  onToken: (t: ReplyToken) => void,
): Promise<Reply> {
  const decoder = new TextDecoder();
  const tokens: ReplyToken[] = [];
  let buffer = "";
  let bytes = 0;
  let done: ReplyDone | undefined;
  const take = (text: string) => {
    if (text.trim() === "") return;
    if (done) {
      throw new TandemError("bad_frame", "Cannot read edge reply: a line follows the closing line");
    }
    const line = parseLine(text);
    if ("done" in line) done = line;
    else {
      tokens.push(line as ReplyToken);
      onToken(line as ReplyToken);
    }
  };
  for await (const chunk of body) {
    bytes += chunk.byteLength;
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      take(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  }
  take(buffer + decoder.decode());
  if (!done) {
    throw new TandemError(
      "bad_frame",
      "Cannot read edge reply: the answer ended without its closing line",
    );
  }
  return { ...done, tokens, bytes };
}

/**
 * Log-probabilities of a row of logits: the chosen token's and the top `k` (log-softmax).
 *
 * @example
 * ```ts
 * import { logprobs } from "./wire_reply.ts";
 * console.log(logprobs(new Float32Array([0, 0]), 0, 2, 1, 0).logprob); // ≈ -0.693
 * ```
 */
export function logprobs(
  logits: Float32Array,
  off: number,
  vocab: number,
  k: number,
  chosen: number,
): { logprob: number; top: [number, number][] } {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[off + i]);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[off + i] - max);
  const lse = max + Math.log(sum);
  const order = Array.from({ length: vocab }, (_, i) => i)
    .sort((a, b) => logits[off + b] - logits[off + a] || a - b)
    .slice(0, k);
  return {
    logprob: logits[off + chosen] - lse,
    top: order.map((i) => [i, logits[off + i] - lse]),
  };
}
