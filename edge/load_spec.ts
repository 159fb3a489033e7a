/**
 * Turning model bytes into what the edge serves, whatever host read them: a tandem shard
 * file (`pack` output: verified against its digests) or a whole llama2.c checkpoint, plus an
 * optional llama2.c tokenizer for the chat route. Also reads bytes from a URL with `fetch`.
 *
 * @example
 * ```ts
 * import { edgeSpecFromBytes } from "./load_spec.ts";
 * declare const bytes: Uint8Array;
 * const spec = await edgeSpecFromBytes(bytes, { id: "stories260K" });
 * ```
 *
 * @module
 */

import { TandemError } from "../runtime/errors.ts";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { verifyShard } from "../runtime/shard.ts";
import { isShardFile, parseShard } from "../runtime/shard_file.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import type { EdgeModelSpec } from "./models.ts";

/** Options of {@linkcode edgeSpecFromBytes}. */
export interface EdgeSpecOptions {
  /** Model id (default: the shard's own, or "model"). */
  id?: string;
  /** llama2.c tokenizer bytes, for `/v1/chat/completions`. */
  tokenizer?: Uint8Array;
  /** Where the bytes came from, for messages. */
  source?: string;
}

/**
 * A served-model spec from file bytes (shard or llama2.c). Throws `bad_model`.
 *
 * @example
 * ```ts
 * import { edgeSpecFromBytes } from "./load_spec.ts";
 * declare const bytes: Uint8Array; declare const tok: Uint8Array;
 * const spec = await edgeSpecFromBytes(bytes, { id: "stories260K", tokenizer: tok });
 * ```
 */
export async function edgeSpecFromBytes(
  bytes: Uint8Array,
  options: EdgeSpecOptions = {},
): Promise<EdgeModelSpec> {
  const source = options.source ?? "model";
  if (isShardFile(bytes)) {
    const shard = parseShard(bytes, source);
    await verifyShard(shard, source);
    const tokenizer = options.tokenizer
      ? parseLlama2cTokenizer(options.tokenizer, shard.model.config.vocabSize)
      : undefined;
    return {
      id: options.id ?? shard.modelId,
      model: shard.model,
      digest: shard.modelDigest,
      tokenizer,
    };
  }
  const model = parseLlama2c(bytes, source);
  const tokenizer = options.tokenizer
    ? parseLlama2cTokenizer(options.tokenizer, model.config.vocabSize)
    : undefined;
  return { id: options.id ?? "model", model, tokenizer };
}

/**
 * Reads a URL's bytes with `fetch`. Throws `network` or `not_found`.
 *
 * @example
 * ```ts
 * import { fetchBytes } from "./load_spec.ts";
 * const bytes = await fetchBytes("http://127.0.0.1:8000/stories260K.bin");
 * ```
 */
export async function fetchBytes(url: string, fetcher: typeof fetch = fetch): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetcher(url);
  } catch (e) {
    throw new TandemError("network", `Cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new TandemError(
      res.status === 404 ? "not_found" : "network",
      `Cannot fetch ${url}: HTTP ${res.status}`,
    );
  }
  return new Uint8Array(await res.arrayBuffer());
}
