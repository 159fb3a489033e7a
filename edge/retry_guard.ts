/**
 * Telling a retry from a different frame that reuses a sequence number. `split_forward.ts`
 * answers a frame carrying the session's last sequence number with the stored answer, without
 * running it again (a retry after a lost answer must not write the KV cache twice). That is
 * right only when the frame is the same one: this guard keeps a fingerprint of the bytes of
 * each session's last frame and refuses another frame under the same number with `conflict`.
 *
 * The fingerprint is FNV-1a over the bytes (64 bits as two 32-bit lanes): it catches a device
 * bug or a corrupted resend, not an adversary — only the session's own key can reach it.
 *
 * @example
 * ```ts
 * import { RetryGuard } from "./retry_guard.ts";
 * const guard = new RetryGuard<object>();
 * const session = {};
 * guard.record(session, 0, new Uint8Array([1, 2]));
 * guard.check(session, 0, 1, new Uint8Array([1, 2])); // a true retry: fine
 * ```
 *
 * @module
 */

import { TandemError } from "../runtime/errors.ts";

/**
 * FNV-1a of the bytes in two lanes with different offsets, as 16 hex digits.
 *
 * @example
 * ```ts
 * import { fingerprint } from "./retry_guard.ts";
 * console.log(fingerprint(new Uint8Array([1])).length); // 16
 * ```
 */
export function fingerprint(bytes: Uint8Array): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    a = Math.imul(a ^ bytes[i], 0x01000193);
    b = Math.imul(b ^ bytes[i] ^ (i & 0xff), 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

/** The fingerprint of each session's last frame, weakly held by session. */
export class RetryGuard<S extends object> {
  readonly #last = new WeakMap<S, { seq: number; print: string }>();

  /**
   * Throws `conflict` when `seq` is the session's last number (`nextSeq - 1`, i.e. the frame
   * will be answered as a retry) but the bytes differ from the frame that got it.
   */
  check(session: S, seq: number, nextSeq: number, bytes: Uint8Array): void {
    const last = this.#last.get(session);
    if (!last || last.seq !== seq || seq + 1 !== nextSeq) return;
    if (last.print !== fingerprint(bytes)) {
      throw new TandemError(
        "conflict",
        `Cannot run frame: sequence number ${seq} was already used by a different frame; the session expects ${nextSeq}`,
      );
    }
  }

  /** Remembers the frame that just ran with `seq`. */
  record(session: S, seq: number, bytes: Uint8Array): void {
    this.#last.set(session, { seq, print: fingerprint(bytes) });
  }
}
