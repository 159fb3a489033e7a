/**
 * A {@linkcode Tokenizer} over a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`),
 * run by `@huggingface/tokenizers` (pure JS, no host APIs).
 *
 * BOS: `encode(text, { bos: true })` lets the tokenizer's own post-processor add its special
 * tokens (Llama's `<s>`, Llama 3's `<|begin_of_text|>`); when that adds nothing (Qwen2), BOS
 * is not forced, except that an empty text still yields `[bosId]` so generation can start.
 *
 * Decoding follows the runtime's convention (the llama2.c tokenizer's): special tokens produce
 * no text, and SentencePiece-style tokenizers (whose decoder strips one leading space) drop
 * the leading space only of the piece right after BOS, so decoding a stream piece by piece
 * agrees with decoding it whole.
 *
 * @example
 * ```ts
 * import { parseHfTokenizer } from "./hf.ts";
 * const dir = "../shared/models/stories260K-hf/";
 * const tok = parseHfTokenizer(await Deno.readTextFile(dir + "tokenizer.json"),
 *   await Deno.readTextFile(dir + "tokenizer_config.json"));
 * console.log(tok.encode("Once upon a time")); // [1, 403, 407, 261, 378]
 * ```
 *
 * @module
 */

import { Tokenizer as HfLib } from "@huggingface/tokenizers";
import { TandemError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

type Json = Record<string, unknown>;

/** Fallback ids from the model's config.json, used when the tokenizer files do not name them. */
export interface HfTokenizerDefaults {
  /** BOS id. */
  bosId?: number;
  /** EOS ids (merged with the tokenizer's own EOS). */
  eosIds?: readonly number[];
}

/** A tokenizer.json tokenizer. */
export class HfTokenizer implements Tokenizer {
  /** One more than the largest id the tokenizer knows. */
  readonly vocabSize: number;
  /** BOS id. */
  readonly bosId: number;
  /** EOS ids. */
  readonly eosIds: readonly number[];
  readonly #lib: HfLib;
  readonly #special: Set<number>;
  readonly #stripAfterBos: boolean;

  /** Wraps a constructed library tokenizer (use {@linkcode parseHfTokenizer}). */
  constructor(lib: HfLib, bosId: number, eosIds: readonly number[], stripAfterBos: boolean) {
    this.#lib = lib;
    this.bosId = bosId;
    this.eosIds = eosIds;
    this.#stripAfterBos = stripAfterBos;
    let max = -1;
    for (const id of lib.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.#special = new Set([
      bosId,
      ...eosIds,
      ...lib.get_added_tokens_decoder().entries()
        .filter(([, t]) => t.special).map(([id]) => id),
    ]);
  }

  /** Encodes text (with the tokenizer's special tokens unless `bos: false`). */
  encode(text: string, options: { bos?: boolean } = {}): number[] {
    const bos = options.bos ?? true;
    const ids = this.#lib.encode(text, { add_special_tokens: bos }).ids;
    if (bos && ids.length === 0) return [this.bosId];
    return ids;
  }

  /** Decodes ids to text; special tokens produce none. */
  decode(ids: readonly number[]): string {
    let text = "";
    let start = 0;
    let afterBos = false;
    const flush = (end: number) => {
      const part = ids.slice(start, end).filter((id) => !this.#special.has(id));
      if (part.length) {
        let s = this.#lib.decode(part, {
          skip_special_tokens: true,
          clean_up_tokenization_spaces: false,
        });
        const lead = this.#lib.id_to_token(part[0]) ?? "";
        if (this.#stripAfterBos && afterBos && lead.startsWith("\u2581") && s.startsWith(" ")) {
          s = s.slice(1); // a "▁word" piece right after BOS; a <0x20> byte piece keeps its space
        }
        text += s;
      }
    };
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === this.bosId) {
        flush(i);
        start = i + 1;
        afterBos = true;
      }
    }
    flush(ids.length);
    return text;
  }
}

const parseJson = (text: string | Uint8Array, source: string): Json => {
  try {
    const s = typeof text === "string" ? text : new TextDecoder().decode(text);
    const j = JSON.parse(s);
    if (typeof j !== "object" || j === null || Array.isArray(j)) {
      throw new Error("not a JSON object");
    }
    return j;
  } catch (e) {
    throw new TandemError("bad_tokenizer", `Cannot load ${source}: ${(e as Error).message}`);
  }
};

/** A token named in tokenizer_config.json: a string or `{ content }`. */
const tokenContent = (v: unknown): string | undefined =>
  typeof v === "string"
    ? v
    : typeof (v as Json)?.content === "string"
    ? (v as Json).content as string
    : undefined;

/**
 * Builds a tokenizer from the text of `tokenizer.json` and (optionally) `tokenizer_config.json`.
 * Throws `bad_tokenizer` naming the file.
 *
 * @example
 * ```ts
 * import { parseHfTokenizer } from "./hf.ts";
 * declare const json: string;
 * const tok = parseHfTokenizer(json, undefined, { bosId: 1, eosIds: [2] }, "tokenizer.json");
 * console.log(tok.decode(tok.encode("hello")));
 * ```
 */
export function parseHfTokenizer(
  tokenizerJson: string | Uint8Array,
  configJson?: string | Uint8Array,
  defaults: HfTokenizerDefaults = {},
  source = "tokenizer.json",
): HfTokenizer {
  const json = parseJson(tokenizerJson, source);
  const config = configJson === undefined ? {} : parseJson(configJson, "tokenizer_config.json");
  if (typeof json.model !== "object" || json.model === null) {
    throw new TandemError("bad_tokenizer", `Cannot load ${source}: it has no "model" section`);
  }
  // SentencePiece-style decoders end with Strip(" ", 1, 0), which strips the first space of
  // every decode; we take it out and strip after BOS instead (see the module doc).
  let stripAfterBos = false;
  const decoder = json.decoder as Json | null;
  if (decoder?.type === "Sequence" && Array.isArray(decoder.decoders)) {
    const kept = (decoder.decoders as Json[]).filter((d) =>
      !(d.type === "Strip" && d.content === " " && d.start === 1)
    );
    stripAfterBos = kept.length !== decoder.decoders.length;
    json.decoder = { ...decoder, decoders: kept };
  }
  let lib: HfLib;
  try {
    lib = new HfLib(json, config);
  } catch (e) {
    throw new TandemError("bad_tokenizer", `Cannot load ${source}: ${(e as Error).message}`);
  }
  const idOf = (v: unknown): number | undefined => {
    const s = tokenContent(v);
    return s === undefined ? undefined : lib.token_to_id(s);
  };
  const bosId = idOf(config.bos_token) ?? defaults.bosId;
  if (bosId === undefined) {
    throw new TandemError(
      "bad_tokenizer",
      `Cannot load ${source}: no BOS token (tokenizer_config.json names none and config.json has no bos_token_id)`,
    );
  }
  const eos = new Set<number>(defaults.eosIds ?? []);
  const own = idOf(config.eos_token);
  if (own !== undefined) eos.add(own);
  return new HfTokenizer(lib, bosId, [...eos], stripAfterBos);
}
