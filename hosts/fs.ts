/**
 * Local files for the loaders: a directory as a {@linkcode FileSource} and the on-disk hub
 * cache as a {@linkcode FileCache}. Uses `node:fs/promises`, which Deno and Node both provide.
 *
 * The cache lives in `TANDEM_CACHE` or `~/.cache/tandem/hub`, one file per key (the keys are
 * listed in runtime/hub.ts); files are written to a temporary name and renamed, so a
 * crash never leaves half a file under the real name.
 *
 * @example
 * ```ts
 * import { DirSource } from "./fs.ts";
 * const dir = new DirSource("../shared/models/stories260K");
 * console.log((await dir.read("tok512.bin")).byteLength); // 6227
 * ```
 *
 * @module
 */

import { mkdir, open, readFile, rename, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { TandemError } from "../runtime/errors.ts";
import type { FileCache, FileSource, ProgressFn } from "../runtime/source.ts";

const code = (e: unknown): string | undefined => (e as { code?: string })?.code;

/**
 * Reads one environment variable, or undefined when unset or not permitted.
 *
 * @example
 * ```ts
 * import { env } from "./fs.ts";
 * console.log(env("HF_ENDPOINT") ?? "https://huggingface.co");
 * ```
 */
export function env(name: string): string | undefined {
  try {
    return process.env[name] || undefined;
  } catch {
    return undefined;
  }
}

/** Bytes [start, end) of a file (fewer if it ends first); file system errors pass through. */
async function readFileRange(path: string, start: number, end: number): Promise<Uint8Array> {
  const out = new Uint8Array(Math.max(0, end - start));
  let got = 0;
  const file = await open(path, "r");
  try {
    while (got < out.byteLength) {
      const { bytesRead } = await file.read(out, got, out.byteLength - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  } finally {
    await file.close();
  }
  return out.subarray(0, got);
}

/**
 * A local directory as a FileSource.
 *
 * @example
 * ```ts
 * import { DirSource } from "./fs.ts";
 * const dir = new DirSource("/models/smollm");
 * if (await dir.exists("config.json")) console.log(dir.describe("config.json"));
 * ```
 */
export class DirSource implements FileSource {
  readonly #dir: string;
  readonly #onProgress?: ProgressFn;

  /** Creates a source for files under `dir`. */
  constructor(dir: string, options: { onProgress?: ProgressFn } = {}) {
    this.#dir = resolve(dir);
    this.#onProgress = options.onProgress;
  }

  /** The absolute path of a file (or of the directory). */
  describe(path?: string): string {
    return path === undefined ? this.#dir : join(this.#dir, path);
  }

  /** Reads a file. Throws `not_found` when it does not exist. */
  async read(path: string): Promise<Uint8Array> {
    const full = this.describe(path);
    try {
      const bytes = new Uint8Array(await readFile(full));
      this.#onProgress?.(bytes.byteLength, bytes.byteLength, path);
      return bytes;
    } catch (e) {
      if (code(e) === "ENOENT") {
        throw new TandemError("not_found", `Cannot load ${full}: no such file`);
      }
      if (code(e) === "EISDIR") {
        throw new TandemError("bad_argument", `Cannot load ${full}: it is a directory`);
      }
      throw new TandemError("bad_model", `Cannot load ${full}: ${(e as Error).message}`);
    }
  }

  /** Reads bytes [start, end) of a file (fewer if it ends first). */
  async readRange(path: string, start: number, end: number): Promise<Uint8Array> {
    const full = this.describe(path);
    let bytes: Uint8Array;
    try {
      bytes = await readFileRange(full, start, end);
    } catch (e) {
      if (code(e) === "ENOENT") {
        throw new TandemError("not_found", `Cannot load ${full}: no such file`);
      }
      throw new TandemError("bad_model", `Cannot load ${full}: ${(e as Error).message}`);
    }
    this.#onProgress?.(bytes.byteLength, Math.max(0, end - start), path);
    return bytes;
  }

  /** Whether a regular file exists at `path`. */
  async exists(path: string): Promise<boolean> {
    try {
      return (await stat(this.describe(path))).isFile();
    } catch {
      return false;
    }
  }
}

/**
 * The default hub cache directory: `TANDEM_CACHE`, else `~/.cache/tandem/hub`.
 *
 * @example
 * ```ts
 * import { defaultCacheDir } from "./fs.ts";
 * console.log(defaultCacheDir());
 * ```
 */
export function defaultCacheDir(): string {
  return env("TANDEM_CACHE") ?? join(homedir(), ".cache", "tandem", "hub");
}

/**
 * A FileCache in a directory.
 *
 * @example
 * ```ts
 * import { DiskCache } from "./fs.ts";
 * const cache = new DiskCache("/tmp/tandem-cache");
 * await cache.put("owner/repo/main/config.json", new TextEncoder().encode("{}"));
 * console.log(await cache.has("owner/repo/main/config.json")); // true
 * ```
 */
export class DiskCache implements FileCache {
  /** The cache directory. */
  readonly dir: string;

  /** Creates a cache in `dir` (default {@linkcode defaultCacheDir}). */
  constructor(dir: string = defaultCacheDir()) {
    this.dir = resolve(dir);
  }

  #path(key: string): string {
    if (key.split("/").some((p) => p === "" || p === "." || p === "..")) {
      throw new TandemError("bad_argument", `Cannot use cache key ${JSON.stringify(key)}`);
    }
    return join(this.dir, ...key.split("/"));
  }

  /** The cached bytes, or undefined. */
  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.#path(key)));
    } catch (e) {
      if (code(e) === "ENOENT") return undefined;
      throw e;
    }
  }

  /** Bytes [start, end) of the cached value (fewer if it ends first), or undefined. */
  async getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined> {
    try {
      return await readFileRange(this.#path(key), start, end);
    } catch (e) {
      if (code(e) === "ENOENT") return undefined;
      throw e;
    }
  }

  /** Whether a key is cached. */
  async has(key: string): Promise<boolean> {
    try {
      return (await stat(this.#path(key))).isFile();
    } catch {
      return false;
    }
  }

  /** Stores bytes atomically (temporary file, then rename). */
  async put(key: string, bytes: Uint8Array): Promise<void> {
    const path = this.#path(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  }
}
