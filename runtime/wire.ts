/**
 * The activation wire frame: hidden states at the split layer, sent by the device to the edge.
 *
 * A frame carries `n` rows of `dim` values — the output of layers `[0, K)` for the tokens at
 * positions `pos .. pos+n-1` — plus everything the edge needs to check that the two halves
 * belong together. All integers are little-endian.
 *
 * | offset   | size  | field        | meaning                                                   |
 * | -------- | ----- | ------------ | --------------------------------------------------------- |
 * | 0        | 4     | magic        | `TNDW` (0x54 0x4E 0x44 0x57)                              |
 * | 4        | u8    | major        | {@linkcode WIRE_MAJOR}; a different major is refused      |
 * | 5        | u8    | minor        | {@linkcode WIRE_MINOR}; newer minors only append fields   |
 * | 6        | u16   | headerBytes  | where the sections start (a multiple of 4)                |
 * | 8        | u8    | dtype        | 0 = `f32`, 1 = `f16`, 2 = `int8` (per-token scale)        |
 * | 9        | u8    | topK         | top-k logprobs wanted per answered token (0 = none)       |
 * | 10       | u16   | flags        | bit 0 `NO_REPLY`, bit 1 `TOKENS`, bit 2 `REPLAY`, bit 3 `STREAM` (1.1), bit 4 `EMBED` (1.2) |
 * | 12       | u32   | split        | K: the rows are the input of layer K                      |
 * | 16       | u32   | dim          | values per row (the model width)                          |
 * | 20       | u32   | n            | rows (tokens) in this frame, ≥ 1                          |
 * | 24       | u32   | pos          | position of the first row; rows are consecutive           |
 * | 28       | u32   | seq          | sequence number of this frame within its session          |
 * | 32       | 16    | session      | session id (the 16 bytes of the edge's UUID)              |
 * | 48       | 32    | digest       | SHA-256 weights digest of the whole model                 |
 * | 80       | u8    | idLength     | m: bytes of the model id                                  |
 * | 81       | m     | modelId      | UTF-8 model id, e.g. `stories260K`; zero-padded to 4      |
 *
 * Then the sections, in this order, each present only when said:
 *
 * | section | size        | present when      | meaning                                      |
 * | ------- | ----------- | ----------------- | -------------------------------------------- |
 * | tokens  | u32 × n     | `TOKENS`/`EMBED`  | the token id each row was embedded from      |
 * | scales  | f32 × n     | `int8`, no `EMBED`| per-row scale: value = int8 × scale          |
 * | payload | n × dim × s | no `EMBED`        | rows; s = 4 (`f32`), 2 (`f16`), 1 (`int8`)   |
 *
 * Flags: `NO_REPLY` — run the layers, answer no token (prefill chunks, replay); `TOKENS` —
 * the rows after the first are draft tokens to verify (self-speculative decoding): the edge
 * answers the accepted prefix plus its own next token; `REPLAY` — the frame rebuilds a lost
 * session (informational); `STREAM` (minor 1) — one row of a draft stream (with `TOKENS`: its
 * input token): the edge runs a session's stream rows in sequence-number order, computes a
 * row only when its token is the one the edge verified for its position, and answers the next
 * token, or `stale` without computing (`edge/draft_stream.ts`). A device streams only to an
 * edge whose session answer advertises `stream`. `EMBED` (minor 2) — token prefill: the frame
 * holds token ids instead of rows and the edge runs the whole model over them (only an edge
 * whose session answer advertises `tokenPrefill`). The total length must equal exactly what
 * the header says.
 * The edge's answer is described in `wire_reply.ts`; docs/wire.md shows both.
 *
 * @example
 * ```ts
 * import { decodeFrame, encodeFrame } from "./wire.ts";
 * const bytes = encodeFrame({
 *   dtype: "int8", split: 2, dim: 4, pos: 0, seq: 0, modelId: "toy",
 *   session: new Uint8Array(16), digest: new Uint8Array(32),
 *   rows: new Float32Array([0.5, -1, 2, 0]),
 * });
 * console.log(decodeFrame(bytes).rows); // ≈ [0.5, -1, 2, 0]
 * ```
 *
 * @module
 */

import { check, TandemError } from "./errors.ts";
import { decodeRows, encodeRows, rowBytes, WIRE_DTYPES, type WireDtype } from "./wire_payload.ts";

export { WIRE_DTYPES, type WireDtype } from "./wire_payload.ts";

/** Major version of the frame layout: a decoder refuses any other. */
export const WIRE_MAJOR = 1;
/** Minor version: fields may be appended to the header; older decoders skip them. */
export const WIRE_MINOR = 2;
/** The four magic bytes "TNDW". */
export const WIRE_MAGIC = 0x57444e54;
/** Flag: run the layers but answer no token (prefill chunk or replay). */
export const FLAG_NO_REPLY = 1;
/** Flag: a tokens section follows the header; rows after the first are drafts to verify. */
export const FLAG_TOKENS = 2;
/** Flag: this frame rebuilds a session the edge lost. */
export const FLAG_REPLAY = 4;
/**
 * Flag (wire 1.1): one row of a draft stream, with `FLAG_TOKENS` (its input token); run in
 * sequence-number order, computed only on the edge's verified branch, else answered stale.
 */
export const FLAG_STREAM = 8;
/**
 * Flag (wire 1.2, "token prefill"): the frame carries the token ids of its positions and no
 * rows (no scales, no payload; `dtype` is ignored): the edge embeds them and runs the whole
 * model [0, L), keeping [K, L)'s KV for the split. Only an edge whose session answer has
 * `tokenPrefill` takes it; another answers 400.
 */
export const FLAG_EMBED = 16;
/**
 * Positions a frame covers: its rows, or its token ids with `FLAG_EMBED`.
 *
 * @example
 * ```ts
 * import { FLAG_EMBED, frameLength, type Frame } from "./wire.ts";
 * declare const f: Frame;
 * console.log(frameLength(f), (f.flags ?? 0) & FLAG_EMBED);
 * ```
 */
export function frameLength(f: Pick<Frame, "flags" | "tokens" | "rows" | "dim">): number {
  return (f.flags ?? 0) & FLAG_EMBED ? f.tokens?.length ?? 0 : f.rows.length / f.dim;
}

/** Bytes of the fixed part of the header (before the model id). */
export const FIXED_HEADER_BYTES = 81;

/** A decoded (or to-be-encoded) frame. */
export interface Frame {
  /** Payload encoding on the wire. */
  dtype: WireDtype;
  /** Top-k logprobs wanted per answered token (0 = none). */
  topK?: number;
  /** Bit set of FLAG_* constants. */
  flags?: number;
  /** Split layer K: rows are the input of layer K. */
  split: number;
  /** Values per row. */
  dim: number;
  /** Position of the first row. */
  pos: number;
  /** Sequence number within the session. */
  seq: number;
  /** 16-byte session id. */
  session: Uint8Array;
  /** 32-byte SHA-256 weights digest of the whole model. */
  digest: Uint8Array;
  /** Model id (UTF-8, at most 255 bytes). */
  modelId: string;
  /** Token id of each row; required when `flags` has FLAG_TOKENS or FLAG_EMBED. */
  tokens?: Uint32Array;
  /** Hidden states [n, dim] (decoded: what the edge will compute with); empty with FLAG_EMBED. */
  rows: Float32Array;
}

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function headerBytesFor(idLength: number): number {
  return Math.ceil((FIXED_HEADER_BYTES + idLength) / 4) * 4;
}

/**
 * Encodes a frame. Throws `bad_argument` for values that cannot be represented (wrong
 * lengths, non-finite values, an f16 overflow).
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./wire.ts";
 * const bytes = encodeFrame({ dtype: "f32", split: 1, dim: 2, pos: 0, seq: 0, modelId: "m",
 *   session: new Uint8Array(16), digest: new Uint8Array(32), rows: new Float32Array([1, 2]) });
 * console.log(bytes.byteLength); // 84 + 8
 * ```
 */
export function encodeFrame(frame: Frame): Uint8Array<ArrayBuffer> {
  const { dim, rows, modelId, session, digest, tokens } = frame;
  const flags = frame.flags ?? 0;
  const topK = frame.topK ?? 0;
  const id = new TextEncoder().encode(modelId);
  const bad = (why: string): never => {
    throw new TandemError("bad_argument", `Cannot encode frame: ${why}`);
  };
  if (!WIRE_DTYPES.includes(frame.dtype)) bad(`unknown dtype ${frame.dtype}`);
  if (!(Number.isInteger(dim) && dim > 0)) bad(`dim must be a positive integer, got ${dim}`);
  const embed = (flags & FLAG_EMBED) !== 0;
  if (embed ? rows.length !== 0 || !tokens?.length : rows.length === 0 || rows.length % dim !== 0) {
    bad(
      embed
        ? `flag EMBED needs token ids and no rows, got ${
          tokens?.length ?? 0
        } ids, ${rows.length} values`
        : `rows hold ${rows.length} values, not a positive multiple of dim ${dim}`,
    );
  }
  const n = embed ? tokens!.length : rows.length / dim;
  if (id.length > 255) bad(`model id is ${id.length} bytes, at most 255 fit`);
  if (session.length !== 16) bad(`session id is ${session.length} bytes, expected 16`);
  if (digest.length !== 32) bad(`digest is ${digest.length} bytes, expected 32`);
  if (!(Number.isInteger(topK) && topK >= 0 && topK <= 255)) bad(`topK ${topK} is not 0..255`);
  for (const [k, v] of [["split", frame.split], ["pos", frame.pos], ["seq", frame.seq]] as const) {
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 32)) bad(`${k} ${v} is not a u32`);
  }
  if (flags & FLAG_TOKENS && tokens?.length !== n) {
    bad(`flag TOKENS needs ${n} token ids, got ${tokens?.length ?? 0}`);
  }
  const headerBytes = headerBytesFor(id.length);
  const tokenBytes = flags & (FLAG_TOKENS | FLAG_EMBED) ? 4 * n : 0;
  const total = headerBytes + tokenBytes + (embed ? 0 : n * rowBytes(frame.dtype, dim));
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  v.setUint32(0, WIRE_MAGIC, true);
  v.setUint8(4, WIRE_MAJOR);
  v.setUint8(5, WIRE_MINOR);
  v.setUint16(6, headerBytes, true);
  v.setUint8(8, WIRE_DTYPES.indexOf(frame.dtype));
  v.setUint8(9, topK);
  v.setUint16(10, flags, true);
  v.setUint32(12, frame.split, true);
  v.setUint32(16, dim, true);
  v.setUint32(20, n, true);
  v.setUint32(24, frame.pos, true);
  v.setUint32(28, frame.seq, true);
  out.set(session, 32);
  out.set(digest, 48);
  v.setUint8(80, id.length);
  out.set(id, 81);
  let off = headerBytes;
  if (tokenBytes) {
    for (let i = 0; i < n; i++) v.setUint32(off + 4 * i, tokens![i], true);
    off += tokenBytes;
  }
  if (!embed) encodeRows(out, off, frame.dtype, rows, n, dim, LE);
  return out;
}

/** Limits a decoder enforces before it allocates anything. */
export interface DecodeLimits {
  /** Most rows a frame may carry (default 4096). */
  maxTokens?: number;
  /** Largest dim accepted (default 65536). */
  maxDim?: number;
}

/**
 * Decodes and validates a frame. Throws `bad_frame` naming the first problem (short buffer,
 * wrong magic, lying lengths, unknown dtype, NaN/Inf), `unsupported_version` for another
 * major version, `too_large` past the limits.
 *
 * @example
 * ```ts
 * import { decodeFrame } from "./wire.ts";
 * try {
 *   decodeFrame(new Uint8Array(10));
 * } catch (e) { console.log((e as Error).message); } // Cannot decode frame: 10 bytes ...
 * ```
 */
export function decodeFrame(bytes: Uint8Array, limits: DecodeLimits = {}): Frame {
  const { maxTokens = 4096, maxDim = 65536 } = limits;
  const fail = (why: string): never => {
    throw new TandemError("bad_frame", `Cannot decode frame: ${why}`);
  };
  if (bytes.byteLength < FIXED_HEADER_BYTES) {
    fail(`${bytes.byteLength} bytes, the header alone needs ${FIXED_HEADER_BYTES}`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== WIRE_MAGIC) fail("wrong magic (not a tandem wire frame)");
  const major = v.getUint8(4);
  const minor = v.getUint8(5);
  check(
    major === WIRE_MAJOR,
    "unsupported_version",
    () =>
      `Cannot decode frame: wire version ${major}.${minor} is not supported by this build (${WIRE_MAJOR}.${WIRE_MINOR}); upgrade the older side`,
  );
  const headerBytes = v.getUint16(6, true);
  const dtypeCode = v.getUint8(8);
  const dtype = WIRE_DTYPES[dtypeCode] ?? fail(`unknown dtype code ${dtypeCode}`);
  const topK = v.getUint8(9);
  const flags = v.getUint16(10, true);
  const split = v.getUint32(12, true);
  const dim = v.getUint32(16, true);
  const n = v.getUint32(20, true);
  const pos = v.getUint32(24, true);
  const seq = v.getUint32(28, true);
  const idLength = v.getUint8(80);
  if (headerBytes % 4 !== 0 || headerBytes < headerBytesFor(idLength)) {
    fail(`header length ${headerBytes} cannot hold a ${idLength}-byte model id`);
  }
  if (headerBytes > bytes.byteLength) {
    fail(`header says ${headerBytes} header bytes, the frame holds ${bytes.byteLength}`);
  }
  if (n === 0) fail("header says 0 tokens");
  if (dim === 0) fail("header says dim 0");
  check(
    n <= maxTokens,
    "too_large",
    () => `Cannot decode frame: ${n} tokens, at most ${maxTokens}`,
  );
  check(dim <= maxDim, "too_large", () => `Cannot decode frame: dim ${dim}, at most ${maxDim}`);
  const embed = (flags & FLAG_EMBED) !== 0;
  if (embed && flags & (FLAG_TOKENS | FLAG_STREAM)) {
    fail("flag EMBED (token ids, no rows) excludes TOKENS and STREAM");
  }
  const tokenBytes = flags & (FLAG_TOKENS | FLAG_EMBED) ? 4 * n : 0;
  const need = headerBytes + tokenBytes + (embed ? 0 : n * rowBytes(dtype, dim));
  if (embed && need !== bytes.byteLength) {
    fail(`header says ${n} token ids (${need} bytes), the frame holds ${bytes.byteLength} bytes`);
  }
  if (need !== bytes.byteLength) {
    const have = Math.floor((bytes.byteLength - headerBytes - tokenBytes) / rowBytes(dtype, dim));
    fail(
      `header says ${n} tokens of dim ${dim} (${dtype}, ${need} bytes), payload holds ${
        Math.max(0, have)
      } (${bytes.byteLength} bytes)`,
    );
  }
  let modelId = "";
  try {
    modelId = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(81, 81 + idLength));
  } catch {
    fail("model id is not valid UTF-8");
  }
  let off = headerBytes;
  let tokens: Uint32Array | undefined;
  if (tokenBytes) {
    tokens = new Uint32Array(n);
    for (let i = 0; i < n; i++) tokens[i] = v.getUint32(off + 4 * i, true);
    off += tokenBytes;
  }
  const rows = embed ? new Float32Array(0) : decodeRows(bytes, off, dtype, n, dim, LE, fail);
  return {
    dtype,
    topK,
    flags,
    split,
    dim,
    pos,
    seq,
    session: bytes.slice(32, 48),
    digest: bytes.slice(48, 80),
    modelId,
    tokens,
    rows,
  };
}
