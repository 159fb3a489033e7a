/**
 * A prefill frame streamed while it is computed: the device runs chunk i+1 of the prompt
 * through layers [0, K) while chunk i is on its way up. The frame is one ordinary wire frame
 * (`wire.ts`) — the edge cannot tell it from a frame sent at once — so only dtypes whose
 * payload has no per-frame section before the rows can stream: `f32` and `f16` (`int8`'s
 * scales come first).
 *
 * The body is pull-driven (high-water mark 0): a chunk is computed when the transport asks for
 * more bytes, so computing overlaps sending and never runs ahead of it by more than a chunk.
 *
 * @example
 * ```ts
 * import { streamedFrame } from "./pipelined_frame.ts";
 * const rows = new Float32Array(8 * 4);
 * const s = streamedFrame({ dtype: "f16", split: 1, dim: 4, pos: 0, seq: 0, modelId: "m",
 *   session: new Uint8Array(16), digest: new Uint8Array(32) }, 8, 3,
 *   (from, to) => rows.subarray(from * 4, to * 4));
 * console.log(s.bytes, (await new Response(s.body).arrayBuffer()).byteLength === s.bytes);
 * ```
 *
 * @module
 */

import { check } from "./errors.ts";
import { encodeFrame, type Frame } from "./wire.ts";
import { rowBytes } from "./wire_payload.ts";

/** A frame body that computes its rows as it is read. */
export interface StreamedFrame {
  /** The frame's bytes, computed chunk by chunk as they are read. */
  body: ReadableStream<Uint8Array>;
  /** Total bytes of the frame. */
  bytes: number;
  /** Computes whatever rows the body has not yet computed (before resending a whole frame). */
  finish(): void;
}

/**
 * Streams a frame of `n` rows, `chunk` rows at a time; `compute(from, to)` runs rows
 * [from, to) (relative to the frame) and returns them, [to − from, dim]. Only `f32`/`f16`.
 *
 * @example
 * ```ts
 * import { streamedFrame } from "./pipelined_frame.ts";
 * declare const compute: (from: number, to: number) => Float32Array;
 * const s = streamedFrame({ dtype: "f32", split: 2, dim: 64, pos: 0, seq: 0, modelId: "m",
 *   session: new Uint8Array(16), digest: new Uint8Array(32) }, 320, 32, compute);
 * await fetch("http://127.0.0.1:8787/v1/sessions/x/forward",
 *   { method: "POST", body: s.body, duplex: "half" } as RequestInit);
 * ```
 */
export function streamedFrame(
  frame: Omit<Frame, "rows" | "tokens">,
  n: number,
  chunk: number,
  compute: (from: number, to: number) => Float32Array,
): StreamedFrame {
  check(frame.dtype !== "int8", "bad_argument", "Cannot stream an int8 frame: scales lead");
  check(!((frame.flags ?? 0) & 2), "bad_argument", "Cannot stream a frame with tokens");
  const { dim, dtype } = frame;
  const rb = rowBytes(dtype, dim);
  // The header is what precedes the payload of a frame with n rows (zeros are never sent).
  const whole = encodeFrame({ ...frame, rows: new Float32Array(n * dim) });
  const header = whole.subarray(0, whole.byteLength - n * rb);
  let done = 0;
  const next = (): Uint8Array => {
    const m = Math.min(chunk, n - done);
    const rows = compute(done, done + m);
    const part = encodeFrame({ ...frame, pos: frame.pos + done, rows });
    const payload = part.subarray(part.byteLength - m * rb);
    const out = done === 0 ? new Uint8Array(header.byteLength + payload.byteLength) : payload;
    if (done === 0) {
      out.set(header);
      out.set(payload, header.byteLength);
    }
    done += m;
    return out;
  };
  return {
    body: new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (done >= n) ctl.close();
        else ctl.enqueue(next());
      },
    }, { highWaterMark: 0 }),
    bytes: whole.byteLength,
    finish: () => {
      while (done < n) next();
    },
  };
}
