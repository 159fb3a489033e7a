/**
 * The device's boundary history and the frames built from it: the input of layer K at every
 * position of the context, and, per position, whether it was first sent with the prompt's
 * dtype. A frame for rows [from, to) is encoded from this history, so a retry or a replay
 * after an edge restart resends each row exactly as it was first sent (per-row int8 scales
 * make the encoding deterministic) and the rebuilt KV cache is the one lost.
 *
 * @example
 * ```ts
 * import { BoundaryHistory } from "./session_frames.ts";
 * const h = new BoundaryHistory(16, 4, "f32", "f16");
 * h.store(new Float32Array(8).fill(1), 0); // two rows at positions 0, 1 …
 * h.mark(0, 2, true); // … sent as prompt rows
 * console.log(h.dtypeAt(0), h.replayRuns(2, 512)); // "f16" [[0, 2]]
 * ```
 *
 * @module
 */

import { encodeFrame, FLAG_EMBED, type Frame, type WireDtype } from "./wire.ts";

/** A frame's header fields (everything but its rows and tokens). */
export type FrameHeader = Omit<Frame, "rows" | "tokens">;

/** Boundary rows by position, with the dtype each was first sent in. */
export class BoundaryHistory {
  /** Values per row. */
  readonly dim: number;
  /** Dtype of decode rows. */
  readonly wire: WireDtype;
  /** Dtype of prompt rows. */
  readonly prefillWire: WireDtype;
  readonly #rows: Float32Array; // [maxSeqLen, dim]: input of layer K at every position
  readonly #prefill: Uint8Array; // per position: 1 sent with the prefill dtype, 2 as a token id
  readonly #tokens: Uint32Array; // per position sent as a token id (token prefill): the id

  /** An empty history for `maxSeqLen` positions of `dim` values. */
  constructor(maxSeqLen: number, dim: number, wire: WireDtype, prefillWire: WireDtype) {
    this.dim = dim;
    this.wire = wire;
    this.prefillWire = prefillWire;
    this.#rows = new Float32Array(maxSeqLen * dim);
    this.#prefill = new Uint8Array(maxSeqLen);
    this.#tokens = new Uint32Array(maxSeqLen);
  }

  /** Marks positions [pos, pos + n) as sent as token ids (token prefill, wire 1.2). */
  markTokens(pos: number, tokens: readonly number[]): void {
    this.#prefill.fill(2, pos, pos + tokens.length);
    this.#tokens.set(tokens, pos);
  }

  /** Whether the position at `pos` was sent as a token id. */
  isToken(pos: number): boolean {
    return this.#prefill[pos] === 2;
  }

  /** A token prefill frame for positions [from, to) under `header` (no rows, `EMBED`). */
  tokenFrame(header: FrameHeader, from: number, to: number): Uint8Array {
    return encodeFrame({
      ...header,
      pos: from,
      dtype: "f32",
      flags: (header.flags ?? 0) | FLAG_EMBED,
      tokens: this.#tokens.slice(from, to),
      rows: new Float32Array(0),
    });
  }

  /** Stores rows [n, dim] at `pos` (overwriting a rolled-back branch). */
  store(rows: Float32Array, pos: number): void {
    this.#rows.set(rows, pos * this.dim);
  }

  /** Marks positions [from, to) as sent with the prompt dtype (`prefill`) or the decode one. */
  mark(from: number, to: number, prefill: boolean): void {
    this.#prefill.fill(prefill ? 1 : 0, from, to);
  }

  /** The row at `pos` ([dim], a view). */
  row(pos: number): Float32Array {
    return this.#rows.subarray(pos * this.dim, (pos + 1) * this.dim);
  }

  /** The dtype the row at `pos` is sent in. */
  dtypeAt(pos: number): WireDtype {
    return this.#prefill[pos] === 1 ? this.prefillWire : this.wire;
  }

  /** Encodes rows [from, to) under `header` (its `pos` and `dtype` are set here). */
  frame(header: FrameHeader, from: number, to: number, tokens?: Uint32Array): Uint8Array {
    return encodeFrame({
      ...header,
      pos: from,
      dtype: this.dtypeAt(from),
      tokens,
      rows: this.#rows.subarray(from * this.dim, to * this.dim),
    });
  }

  /**
   * How to replay positions [0, upTo): runs [from, to) of rows first sent with the same dtype
   * (or all as token ids), at most `max` rows each.
   */
  replayRuns(upTo: number, max: number): [number, number][] {
    const runs: [number, number][] = [];
    for (let p = 0; p < upTo;) {
      let q = Math.min(upTo, p + max);
      for (let i = p + 1; i < q; i++) if (this.#prefill[i] !== this.#prefill[p]) q = i;
      runs.push([p, q]);
      p = q;
    }
    return runs;
  }
}
