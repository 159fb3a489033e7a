/**
 * The tokenizer contract, and a streaming decoder that turns token ids into text as they
 * arrive without ever printing half a UTF-8 character.
 *
 * @module
 */

/** Text ⇄ token ids. */
export interface Tokenizer {
  /** Number of token ids. */
  readonly vocabSize: number;
  /** Beginning-of-sequence id. */
  readonly bosId: number;
  /** End-of-sequence ids. */
  readonly eosIds: readonly number[];
  /** Encodes text; prepends BOS when `bos` is true (the default). */
  encode(text: string, options?: { bos?: boolean }): number[];
  /** Decodes ids to text (special tokens such as BOS/EOS produce no text). */
  decode(ids: readonly number[]): string;
}

/**
 * Decodes a growing token stream into text pieces. Holds back text while it ends in an
 * incomplete UTF-8 sequence.
 *
 * @example
 * ```ts
 * import { StreamDecoder, type Tokenizer } from "./tokenizer.ts";
 * declare const tok: Tokenizer;
 * const stream = new StreamDecoder(tok, [tok.bosId]);
 * for (const id of [403, 407]) console.log(stream.push(id));
 * ```
 */
export class StreamDecoder {
  readonly #tok: Tokenizer;
  readonly #ids: number[];
  #printed = 0;

  /** Starts after `context` (ids already shown, e.g. the prompt). */
  constructor(tokenizer: Tokenizer, context: readonly number[] = []) {
    this.#tok = tokenizer;
    this.#ids = [...context];
    this.#printed = context.length ? tokenizer.decode(this.#ids).length : 0;
  }

  /** Adds one id; returns the new text that is complete (possibly ""). */
  push(id: number): string {
    this.#ids.push(id);
    const text = this.#tok.decode(this.#ids);
    if (text.endsWith("\uFFFD")) return "";
    const piece = text.slice(this.#printed);
    this.#printed = text.length;
    return piece;
  }

  /** Returns whatever is still held back (at the end of a stream). */
  flush(): string {
    const text = this.#tok.decode(this.#ids);
    const piece = text.slice(this.#printed);
    this.#printed = text.length;
    return piece;
  }
}
