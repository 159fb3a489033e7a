/**
 * The llama2.c tokenizer (tok512.bin / tokenizer.bin): SentencePiece-style BPE by merge
 * score, with `<0xNN>` byte pieces.
 *
 * File layout: int32 max_token_length, then per token: f32 score, int32 byte length, bytes.
 * Encoding prepends a space to non-empty text, starts from single UTF-8 characters (unknown
 * ones fall back to byte pieces, id = byte + 3), then repeatedly merges the adjacent pair
 * whose merged piece has the highest score. Decoding drops the leading space of the piece
 * that follows BOS.
 *
 * @example
 * ```ts
 * import { parseLlama2cTokenizer } from "./llama2c.ts";
 * const tok = parseLlama2cTokenizer(await Deno.readFile("../shared/models/stories260K/tok512.bin"), 512);
 * console.log(tok.encode("Once upon a time")); // [1, 403, 407, 261, 378]
 * ```
 *
 * @module
 */

import { TandemError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

const latin1 = (bytes: Uint8Array): string => {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
};

/** A llama2.c tokenizer loaded in memory. */
export class Llama2cTokenizer implements Tokenizer {
  /** Number of pieces. */
  readonly vocabSize: number;
  /** BOS id (1). */
  readonly bosId = 1;
  /** EOS ids ([2]). */
  readonly eosIds: readonly number[] = [2];
  /** Piece bytes by id. */
  readonly pieces: Uint8Array[];
  /** Merge scores by id. */
  readonly scores: Float32Array;
  readonly #lookup: Map<string, number>;
  readonly #utf8 = new TextEncoder();

  /** Builds a tokenizer from pieces and scores. */
  constructor(pieces: Uint8Array[], scores: Float32Array) {
    this.pieces = pieces;
    this.scores = scores;
    this.vocabSize = pieces.length;
    this.#lookup = new Map();
    pieces.forEach((p, i) => {
      const key = latin1(p);
      if (!this.#lookup.has(key)) this.#lookup.set(key, i);
    });
  }

  /** Encodes text to ids (BOS first unless `bos: false`). */
  encode(text: string, options: { bos?: boolean } = {}): number[] {
    const ids: number[] = [];
    if (options.bos ?? true) ids.push(this.bosId);
    if (text.length === 0) return ids;
    const toks: number[] = [];
    const space = this.#lookup.get(" ");
    if (space !== undefined) toks.push(space);
    for (const ch of text) {
      const bytes = this.#utf8.encode(ch);
      const id = this.#lookup.get(latin1(bytes));
      if (id !== undefined) toks.push(id);
      else for (const b of bytes) toks.push(b + 3);
    }
    for (;;) {
      let best = -Infinity;
      let bestId = -1;
      let bestAt = -1;
      for (let i = 0; i + 1 < toks.length; i++) {
        const merged = latin1(this.pieces[toks[i]]) + latin1(this.pieces[toks[i + 1]]);
        const id = this.#lookup.get(merged);
        if (id !== undefined && this.scores[id] > best) {
          best = this.scores[id];
          bestId = id;
          bestAt = i;
        }
      }
      if (bestAt < 0) break;
      toks.splice(bestAt, 2, bestId);
    }
    return ids.concat(toks);
  }

  /** The bytes one token contributes after `prev` (BOS/EOS contribute none). */
  tokenBytes(id: number, prev: number): Uint8Array {
    if (id === this.bosId || this.eosIds.includes(id)) return new Uint8Array();
    let piece = this.pieces[id];
    if (!piece) return new Uint8Array();
    const s = latin1(piece);
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(s);
    if (m) return new Uint8Array([parseInt(m[1], 16)]);
    if (prev === this.bosId && piece[0] === 0x20) piece = piece.subarray(1);
    return piece;
  }

  /** Decodes ids to text. */
  decode(ids: readonly number[]): string {
    const chunks: Uint8Array[] = [];
    let len = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes(ids[i], i > 0 ? ids[i - 1] : -1);
      chunks.push(b);
      len += b.length;
    }
    const all = new Uint8Array(len);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return new TextDecoder().decode(all);
  }
}

/** Reads a llama2.c tokenizer file with `vocabSize` pieces. Throws `bad_tokenizer`. */
export function parseLlama2cTokenizer(
  bytes: Uint8Array,
  vocabSize: number,
  source = "tokenizer",
): Llama2cTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string): never => {
    throw new TandemError("bad_tokenizer", `Cannot load ${source}: ${why}`);
  };
  if (bytes.byteLength < 4) fail(`file is ${bytes.byteLength} bytes, too short for a header`);
  const maxLen = view.getInt32(0, true);
  if (maxLen <= 0 || maxLen > 1 << 16) fail(`max_token_length ${maxLen} is not plausible`);
  const pieces: Uint8Array[] = [];
  const scores = new Float32Array(vocabSize);
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (off + 8 > bytes.byteLength) {
      fail(`truncated at token ${i} of ${vocabSize} (offset ${off} of ${bytes.byteLength})`);
    }
    scores[i] = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxLen || off + len > bytes.byteLength) {
      fail(`token ${i} claims ${len} bytes (max ${maxLen}, ${bytes.byteLength - off} left)`);
    }
    pieces.push(bytes.slice(off, off + len));
    off += len;
  }
  if (off !== bytes.byteLength) {
    fail(
      `${
        bytes.byteLength - off
      } trailing bytes after ${vocabSize} tokens (vocabulary size mismatch?)`,
    );
  }
  return new Llama2cTokenizer(pieces, scores);
}
