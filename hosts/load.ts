/**
 * `loadModel`: the one entry point that turns what a user typed into a model and tokenizer.
 *
 * | spec                               | what is loaded                                             |
 * | ---------------------------------- | ---------------------------------------------------------- |
 * | `path/to/model.bin`                | llama2.c checkpoint; tokenizer tok512.bin / tokenizer.bin beside it |
 * | `path/to/folder` (or its config.json) | Hugging Face folder: config.json, model.safetensors[.index.json], tokenizer.json |
 * | `https://host/folder` (or `.../x.bin`) | the same over HTTP                                     |
 * | `hf:owner/repo[@revision]`         | a hub repository, cached on disk (`TANDEM_CACHE`, default ~/.cache/tandem/hub); `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE` are honoured; a branch is re-resolved to its current commit on each load (see runtime/hub.ts) |
 *
 * Every failure is a TandemError naming the file and what is wrong.
 *
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const { model, tokenizer, description } = await loadModel("../shared/models/stories260K/stories260K.bin");
 * console.error(description);
 * console.log(tokenizer.encode("Once upon a time"), model.config.dim);
 * ```
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { TandemError } from "../runtime/errors.ts";
import {
  type LoadedModel,
  loadHfFolder,
  loadLlama2cFrom,
  type SourceFile,
} from "../runtime/load.ts";
import type { ModelParts } from "../runtime/model.ts";
import { type FileSource, HttpSource, type ProgressFn } from "../runtime/source.ts";
import { HubSource } from "../runtime/hub.ts";
import { DirSource, DiskCache, env } from "./fs.ts";

/** Options of {@linkcode loadModel}. */
export interface LoadModelOptions {
  /** Tokenizer file (path or URL) to use instead of the one beside the model. */
  tokenizer?: string;
  /** Hub cache directory (default `TANDEM_CACHE` or ~/.cache/tandem/hub). */
  cacheDir?: string;
  /** Hub endpoint (default `HF_ENDPOINT` or https://huggingface.co). */
  endpoint?: string;
  /** Use only the hub cache, never the network (default: `HF_HUB_OFFLINE` is 1/true/yes). */
  offline?: boolean;
  /** The fetch to use for URLs and the hub. */
  fetch?: typeof fetch;
  /** Called as files are read or downloaded. */
  onProgress?: (done: number, total: number, what: string) => void;
  /** Which parts to hold (default: the whole model). */
  parts?: Partial<ModelParts>;
}

const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);

/** Splits a URL or path into (folder source, file name). */
function fileIn(
  spec: string,
  fetcher: typeof fetch | undefined,
  onProgress?: ProgressFn,
): SourceFile {
  if (isUrl(spec)) {
    const url = new URL(spec);
    const cut = url.pathname.lastIndexOf("/");
    const name = decodeURIComponent(url.pathname.slice(cut + 1));
    url.pathname = url.pathname.slice(0, cut + 1);
    return { source: new HttpSource(url.href, { fetch: fetcher, onProgress }), path: name };
  }
  return { source: new DirSource(dirname(spec), { onProgress }), path: basename(spec) };
}

/**
 * Loads a model and its tokenizer from a path, URL or `hf:owner/repo[@revision]`.
 *
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const device = await loadModel("hf:HuggingFaceTB/SmolLM2-135M", { parts: { layers: [0, 4], head: false } });
 * console.log(device.description);
 * ```
 */
export async function loadModel(
  spec: string,
  options: LoadModelOptions = {},
): Promise<LoadedModel> {
  if (typeof spec !== "string" || spec.trim() === "") {
    throw new TandemError(
      "bad_argument",
      "Cannot load a model: no model given (pass --model <path|url|hf:owner/repo>)",
    );
  }
  const { onProgress, parts } = options;
  const tokenizer = options.tokenizer
    ? fileIn(options.tokenizer, options.fetch, onProgress)
    : undefined;
  const load = { parts, tokenizer };

  if (spec.startsWith("hf:")) {
    const source = new HubSource(spec, {
      endpoint: options.endpoint ?? env("HF_ENDPOINT"),
      token: env("HF_TOKEN"),
      offline: options.offline ?? /^(1|true|yes|on)$/i.test(env("HF_HUB_OFFLINE") ?? ""),
      cache: new DiskCache(options.cacheDir),
      fetch: options.fetch,
      onProgress,
    });
    return await loadHfFolder(source, load);
  }
  if (isUrl(spec)) {
    if (/\.bin$/i.test(new URL(spec).pathname)) {
      const { source, path } = fileIn(spec, options.fetch, onProgress);
      return await loadLlama2cFrom(source, path, load);
    }
    return await loadHfFolder(new HttpSource(spec, { fetch: options.fetch, onProgress }), load);
  }

  let isDir: boolean;
  try {
    isDir = (await stat(spec)).isDirectory();
  } catch {
    throw new TandemError("not_found", `Cannot load ${spec}: no such file or directory`);
  }
  if (isDir) return await loadHfFolder(new DirSource(spec, { onProgress }), load);
  const name = basename(spec);
  if (
    name === "config.json" || name.endsWith(".safetensors") ||
    name.endsWith(".safetensors.index.json")
  ) {
    return await loadHfFolder(new DirSource(dirname(spec), { onProgress }), load);
  }
  const { source, path } = fileIn(spec, undefined, onProgress);
  return await loadLlama2cFrom(source as FileSource, path, load);
}
