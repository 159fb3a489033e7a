/**
 * Portable model loading from any {@linkcode FileSource}: a Hugging Face folder (config.json +
 * model.safetensors or a sharded index + tokenizer.json) or a llama2.c checkpoint with its
 * tokenizer. Hosts resolve a user's spec (path, URL, `hf:`) to a source; see `hosts/load.ts`.
 *
 * Only the tensors the requested {@linkcode ModelParts} need are converted; of a sharded
 * checkpoint only the shards holding them are read, and from a source with range reads only
 * their bytes (`safetensors_source.ts`).
 *
 * @example
 * ```ts
 * import { loadHfFolder } from "./load.ts";
 * import { HttpSource } from "./source.ts";
 * const { model, tokenizer, description } = await loadHfFolder(new HttpSource("http://127.0.0.1:8000/m/"));
 * console.log(description, tokenizer.encode("Hi"), model.config.nLayers);
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";
import { parseLlama2c } from "./formats/llama2c.ts";
import { hfTensorNames, modelFromHf } from "./formats/hf.ts";
import { parseHfConfig } from "./formats/hf_config.ts";
import { parseSafetensorsIndex, type SafetensorsFile } from "./formats/safetensors.ts";
import { readSafetensors } from "./safetensors_source.ts";
import { type Model, type ModelConfig, type ModelParts, parameterCount } from "./model.ts";
import type { FileSource } from "./source.ts";
import { parseHfTokenizer } from "./tokenizer/hf.ts";
import { parseLlama2cTokenizer } from "./tokenizer/llama2c.ts";
import type { Tokenizer } from "./tokenizer/tokenizer.ts";

/** A loaded model, its tokenizer, and a one-line description for diagnostics. */
export interface LoadedModel {
  /** The model (or the parts asked for). */
  model: Model;
  /** Its tokenizer. */
  tokenizer: Tokenizer;
  /** E.g. "stories260K.bin (llama2.c, 5 layers, dim 64, 0.26M params)". */
  description: string;
}

/** A file in a source: where a tokenizer given explicitly lives. */
export interface SourceFile {
  /** The source holding it. */
  source: FileSource;
  /** Its path in the source. */
  path: string;
}

/** Options shared by the portable loaders. */
export interface SourceLoadOptions {
  /** Which parts to hold (default: everything). */
  parts?: Partial<ModelParts>;
  /** A tokenizer file to use instead of the one beside the model. */
  tokenizer?: SourceFile;
}

/**
 * Completes a partial parts request against a config. Throws `bad_argument` for bad ranges.
 *
 * @example
 * ```ts
 * import { resolveParts } from "./load.ts";
 * import type { ModelConfig } from "./model.ts";
 * declare const config: ModelConfig;
 * const device = resolveParts(config, { layers: [0, 2], head: false });
 * ```
 */
export function resolveParts(config: ModelConfig, parts: Partial<ModelParts> = {}): ModelParts {
  const layers = parts.layers ?? [0, config.nLayers];
  const [from, to] = layers;
  if (
    !(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to &&
      to <= config.nLayers)
  ) {
    throw new TandemError(
      "bad_argument",
      `Cannot load layers [${layers}]: the model has layers 0..${config.nLayers}`,
    );
  }
  return { layers: [from, to], embed: parts.embed ?? true, head: parts.head ?? true };
}

const decodeJson = (bytes: Uint8Array, what: string): unknown => {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${what}: not valid JSON (${(e as Error).message})`,
    );
  }
};

const describeModel = (name: string, format: string, c: ModelConfig): string =>
  `${name} (${format}, ${c.nLayers} layers, dim ${c.dim}, ${
    (parameterCount(c) / 1e6).toFixed(2)
  }M params)`;

/**
 * Reads a tokenizer file: `*.json` is a Hugging Face tokenizer.json (with tokenizer_config.json
 * beside it when present), anything else a llama2.c tokenizer with `config.vocabSize` pieces.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./load.ts";
 * import type { FileSource } from "./source.ts";
 * import type { ModelConfig } from "./model.ts";
 * declare const source: FileSource; declare const config: ModelConfig;
 * const tok = await loadTokenizer({ source, path: "tok512.bin" }, config);
 * ```
 */
export async function loadTokenizer(file: SourceFile, config: ModelConfig): Promise<Tokenizer> {
  const { source, path } = file;
  const what = source.describe(path);
  if (path.endsWith(".json")) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
    const cfgPath = dir + "tokenizer_config.json";
    const cfg = await source.exists(cfgPath) ? await source.read(cfgPath) : undefined;
    const defaults = { bosId: config.bosId, eosIds: config.eosIds };
    return parseHfTokenizer(await readTokenizer(source, path), cfg, defaults, what);
  }
  return parseLlama2cTokenizer(await readTokenizer(source, path), config.vocabSize, what);
}

const readTokenizer = async (source: FileSource, path: string): Promise<Uint8Array> => {
  try {
    return await source.read(path);
  } catch (e) {
    if (e instanceof TandemError && e.code === "not_found") {
      throw new TandemError(
        "bad_tokenizer",
        `Cannot load tokenizer ${source.describe(path)}: no such file`,
      );
    }
    throw e;
  }
};

/**
 * Loads a llama2.c checkpoint `path` from a source, with `options.tokenizer` or the first of
 * tok512.bin / tokenizer.bin beside it.
 *
 * @example
 * ```ts
 * import { loadLlama2cFrom } from "./load.ts";
 * import type { FileSource } from "./source.ts";
 * declare const dir: FileSource;
 * const { model } = await loadLlama2cFrom(dir, "stories260K.bin");
 * ```
 */
export async function loadLlama2cFrom(
  source: FileSource,
  path: string,
  options: SourceLoadOptions = {},
): Promise<LoadedModel> {
  const full = parseLlama2c(await source.read(path), source.describe(path));
  const parts = resolveParts(full.config, options.parts);
  const model = selectParts(full, parts);
  let tokFile = options.tokenizer;
  if (!tokFile) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
    const candidates = ["tok512.bin", "tokenizer.bin"];
    for (const c of candidates) {
      if (await source.exists(dir + c)) {
        tokFile = { source, path: dir + c };
        break;
      }
    }
    if (!tokFile) {
      throw new TandemError(
        "bad_tokenizer",
        `No tokenizer found beside ${source.describe(path)}: looked for ${
          candidates.join(", ")
        }; pass --tokenizer`,
      );
    }
  }
  const tokenizer = await loadTokenizer(tokFile, model.config);
  return {
    model,
    tokenizer,
    description: describeModel(source.describe(path), "llama2.c", model.config),
  };
}

/** Keeps only the tensors `parts` needs (views, no copies). */
function selectParts(model: Model, parts: ModelParts): Model {
  const keep = new Set(
    [...model.tensors.keys()].filter((name) => {
      if (name === "embed") return parts.embed || (parts.head && model.config.tiedEmbeddings);
      if (name === "norm" || name === "output") return parts.head;
      const layer = Number(name.split(".")[1]);
      return layer >= parts.layers[0] && layer < parts.layers[1];
    }),
  );
  return {
    config: model.config,
    parts,
    tensors: new Map([...model.tensors].filter(([n]) => keep.has(n))),
  };
}

/**
 * Loads a Hugging Face folder from a source: config.json, model.safetensors (or
 * model.safetensors.index.json and the shards it names), and tokenizer.json.
 *
 * @example
 * ```ts
 * import { loadHfFolder } from "./load.ts";
 * import type { FileSource } from "./source.ts";
 * declare const folder: FileSource;
 * const { model } = await loadHfFolder(folder, { parts: { layers: [0, 2], head: false } });
 * ```
 */
export async function loadHfFolder(
  source: FileSource,
  options: SourceLoadOptions = {},
): Promise<LoadedModel> {
  const where = source.describe();
  if (!(await source.exists("config.json"))) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${where}: no config.json (not a Hugging Face model folder?)`,
    );
  }
  const config = parseHfConfig(
    decodeJson(await source.read("config.json"), source.describe("config.json")),
    source.describe("config.json"),
  );
  const parts = resolveParts(config, options.parts);
  let get: (name: string) => SafetensorsFile | undefined;
  const names = new Set(hfTensorNames(config, parts).values());
  const all = parts.embed && parts.head && parts.layers[0] === 0 &&
    parts.layers[1] === config.nLayers;
  const wanted = all ? undefined : (name: string) => names.has(name); // undefined: read whole
  if (await source.exists("model.safetensors")) {
    const { file } = await readSafetensors(source, "model.safetensors", wanted);
    get = () => file;
  } else if (await source.exists("model.safetensors.index.json")) {
    const indexPath = "model.safetensors.index.json";
    const text = new TextDecoder().decode(await source.read(indexPath));
    const weightMap = parseSafetensorsIndex(text, source.describe(indexPath));
    const needed = new Set<string>();
    for (const name of names) {
      const shard = weightMap.get(name);
      if (shard) needed.add(shard);
    }
    const shards = new Map<string, SafetensorsFile>();
    for (const shard of needed) {
      shards.set(shard, (await readSafetensors(source, shard, wanted)).file);
    }
    get = (name) => shards.get(weightMap.get(name) ?? "");
  } else {
    throw new TandemError(
      "bad_model",
      `Cannot load ${where}: no weights found (looked for model.safetensors, model.safetensors.index.json; ONNX and PyTorch .bin weights are not supported)`,
    );
  }
  const model = modelFromHf(config, parts, (name) => {
    const file = get(name);
    return file?.entries.has(name) ? file.f32(name) : undefined;
  }, where);
  const tokFile = options.tokenizer ?? { source, path: "tokenizer.json" };
  const tokenizer = await loadTokenizer(tokFile, config);
  return {
    model,
    tokenizer,
    description: describeModel(where, "Hugging Face safetensors", config),
  };
}
