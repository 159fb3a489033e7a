/**
 * Reading a forward frame while running it: a prompt frame streamed by the device
 * (`runtime/pipelined_frame.ts`) arrives chunk by chunk, and the edge runs [K, L) on each
 * batch of complete rows as it lands, so its share of the prompt overlaps the device's compute
 * and the upload of the rows still to come. Only a plain frame (no tokens, `f32`/`f16`) that
 * appends to its session (`pos` = the session's length, the next sequence number) runs early;
 * anything else is read whole and run as before. Rows run early go into cache positions the
 * session does not hold yet, so a frame that fails mid-way leaves the session as it was.
 *
 * @example
 * ```ts
 * import { readFrameRunning } from "./streamed_forward.ts";
 * import { runFrame, type EdgeSession } from "./split_forward.ts";
 * import { decodeFrame } from "../runtime/wire.ts";
 * declare const req: Request; declare const s: EdgeSession; declare const id: Uint8Array;
 * const { bytes, early } = await readFrameRunning(req, 1 << 24, s, id, {});
 * console.log(runFrame(s, decodeFrame(bytes), id, early));
 * ```
 *
 * @module
 */

import { TandemError } from "../runtime/errors.ts";
import { decodeFrame, type DecodeLimits, FIXED_HEADER_BYTES, type Frame } from "../runtime/wire.ts";
import { decodeRows, rowBytes } from "../runtime/wire_payload.ts";
import { checkFrame, type EdgeSession } from "./split_forward.ts";
import { readBytes, readChunk } from "./body.ts";

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const running = new WeakSet<EdgeSession>();

/** What {@linkcode readFrameRunning} read. */
export interface FrameRead {
  /** The whole frame's bytes. */
  bytes: Uint8Array;
  /** When the frame ran as it arrived: [K, L)'s outputs for every row, [n, dim], and the ms. */
  early?: { hidden: Float32Array; ms: number };
}

/** The frame's header as a frame with zero rows, if it may run early on `s`; else undefined. */
function plan(
  head: Uint8Array,
  s: EdgeSession,
  sessionBytes: Uint8Array,
  limits: DecodeLimits,
): Frame | undefined {
  if (head.byteLength < FIXED_HEADER_BYTES) return undefined; // a lying header length
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const dtype = (["f32", "f16"] as const)[v.getUint8(8)]; // int8's scales precede its rows
  const n = v.getUint32(20, true), dim = v.getUint32(16, true);
  if (!dtype || v.getUint16(10, true) !== 0 || n < 2 || dim === 0) return undefined;
  try {
    const probe = new Uint8Array(head.byteLength + n * rowBytes(dtype, dim));
    probe.set(head);
    const f = decodeFrame(probe, limits);
    checkFrame(s, f, sessionBytes);
    return f.seq === s.nextSeq && f.pos === s.length ? f : undefined;
  } catch {
    return undefined; // the whole frame's decode and run report the error
  }
}

/**
 * Reads a forward request's frame under `limit` bytes; when `session` may run it early (see
 * the module doc), runs its rows through [K, L) batch by batch as they arrive.
 *
 * @example
 * ```ts
 * import { readFrameRunning } from "./streamed_forward.ts";
 * declare const req: Request;
 * const { bytes } = await readFrameRunning(req, 1 << 24, undefined, new Uint8Array(16), {});
 * ```
 */
export async function readFrameRunning(
  request: Request,
  limit: number,
  session: EdgeSession | undefined,
  sessionBytes: Uint8Array,
  limits: DecodeLimits,
): Promise<FrameRead> {
  if (!session || running.has(session) || !request.body) {
    return { bytes: await readBytes(request, limit) };
  }
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) return { bytes: await readBytes(request, limit) }; // throws too_large
  const s = session;
  running.add(s);
  let buf = new Uint8Array(4096);
  let size = 0;
  let f: Frame | undefined, planned = false, headerBytes = 0, rb = 0, n = 0, done = 0;
  let out: Float32Array | undefined;
  let ms = 0;
  const { engine, config } = s.model;
  const reader = request.body.getReader();
  try {
    while (true) {
      const chunk = await readChunk(reader);
      if (chunk.done) break;
      const value = chunk.value;
      if (size + value.byteLength > limit) {
        await reader.cancel();
        throw new TandemError(
          "too_large",
          `Cannot read request: the body is over ${limit} bytes, the limit is ${limit} bytes`,
        );
      }
      if (size + value.byteLength > buf.byteLength) {
        const grown = new Uint8Array(Math.max(2 * buf.byteLength, size + value.byteLength));
        grown.set(buf.subarray(0, size));
        buf = grown;
      }
      buf.set(value, size);
      size += value.byteLength;
      if (!planned && size >= FIXED_HEADER_BYTES) {
        headerBytes = new DataView(buf.buffer).getUint16(6, true);
        if (size >= headerBytes) {
          planned = true;
          f = plan(buf.slice(0, headerBytes), s, sessionBytes, limits);
          if (f) {
            n = f.rows.length / f.dim;
            rb = rowBytes(f.dtype, f.dim);
            out = new Float32Array(n * f.dim);
          }
        }
      }
      if (f && out && s.nextSeq === f.seq && s.length === f.pos) {
        const have = Math.min(n, Math.floor((size - headerBytes) / rb));
        if (have > done) {
          const rows = decodeRows(buf, headerBytes + done * rb, f.dtype, have - done, f.dim, LE, (
            why,
          ) => {
            throw new TandemError("bad_frame", `Cannot decode frame: ${why}`);
          });
          const t0 = performance.now();
          out.set(
            engine.forward(s.cache, rows, f.pos + done, s.split, config.nLayers),
            done * f.dim,
          );
          ms += performance.now() - t0;
          done = have;
        }
      } else out = undefined; // another frame ran on the session meanwhile: run it whole
    }
  } finally {
    running.delete(s);
  }
  const bytes = buf.subarray(0, size);
  return out && done === n ? { bytes, early: { hidden: out, ms } } : { bytes };
}
