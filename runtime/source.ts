/**
 * Where model files come from: a folder-like {@linkcode FileSource} that reads files by
 * relative path. This module holds the portable one over `fetch`; the Hugging Face hub and its
 * cache are `hub.ts`, a local directory and the on-disk cache live in `hosts/fs.ts`.
 *
 * @example
 * ```ts
 * import { HttpSource } from "./source.ts";
 * const src = new HttpSource("https://example.com/models/stories260K-hf/");
 * const config = JSON.parse(new TextDecoder().decode(await src.read("config.json")));
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";

/** A read-only folder of files addressed by relative path. */
export interface FileSource {
  /** Reads a whole file. Throws `not_found`, `unauthorized` or `network` naming the file. */
  read(path: string): Promise<Uint8Array>;
  /** Whether a file exists. Throws `unauthorized` or `network` when it cannot tell. */
  exists(path: string): Promise<boolean>;
  /**
   * Reads bytes [start, end) of a file, fewer if the file ends first; sources that can (HTTP
   * range requests, local files, the hub) implement it so a load fetches only what it needs.
   */
  readRange?(path: string, start: number, end: number): Promise<Uint8Array>;
  /** Where a file (or, without a path, the whole source) lives: a path or URL for messages. */
  describe(path?: string): string;
}

/** A byte store keyed by relative path (the hub cache). Implemented on disk in hosts/fs.ts. */
export interface FileCache {
  /** The bytes stored under `key`, or undefined. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Bytes [start, end) stored under `key` (fewer if it ends first), or undefined; optional. */
  getRange?(key: string, start: number, end: number): Promise<Uint8Array | undefined>;
  /** Whether something is stored under `key` (without reading it). */
  has(key: string): Promise<boolean>;
  /** Stores bytes under `key` (atomically: a reader never sees half a file). */
  put(key: string, bytes: Uint8Array): Promise<void>;
}

/** Progress callback: bytes done of total (0 when unknown) for the file named `what`. */
export type ProgressFn = (done: number, total: number, what: string) => void;

/** Options of {@linkcode HttpSource}. */
export interface HttpSourceOptions {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Called as bytes arrive. */
  onProgress?: ProgressFn;
}

/**
 * Files under a base URL, read with `fetch`.
 *
 * @example
 * ```ts
 * import { HttpSource } from "./source.ts";
 * const src = new HttpSource("http://127.0.0.1:8000/models/stories260K-hf/");
 * if (await src.exists("config.json")) console.log((await src.read("config.json")).byteLength);
 * ```
 */
export class HttpSource implements FileSource {
  readonly #base: string;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;
  readonly #onProgress?: ProgressFn;
  #whole?: { path: string; bytes: Uint8Array }; // a file a server sent whole for a range

  /** Creates a source for files under `baseUrl` (a trailing slash is added if missing). */
  constructor(baseUrl: string, options: HttpSourceOptions = {}) {
    this.#base = baseUrl.endsWith("/") ? baseUrl : baseUrl + "/";
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#headers = options.headers ?? {};
    this.#onProgress = options.onProgress;
  }

  /** The URL of a file. */
  describe(path = ""): string {
    return this.#base + path.split("/").map(encodeURIComponent).join("/");
  }

  /** Downloads a file. */
  async read(path: string): Promise<Uint8Array> {
    const res = await this.#request(path, "GET");
    if (!res.ok) await failFor(res, path, this.describe(path));
    return await this.#body(res, path);
  }

  /**
   * Downloads bytes [start, end) with a range request. A server that ignores it sends the whole
   * file, which is then kept and serves the next ranges of the same file without downloading
   * it again (one file at a time).
   */
  async readRange(path: string, start: number, end: number): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    if (this.#whole?.path === path) return this.#whole.bytes.subarray(start, end);
    const res = await this.#request(path, "GET", { Range: `bytes=${start}-${end - 1}` });
    if (res.status === 416) {
      await res.body?.cancel();
      return new Uint8Array(0); // the file ends before start
    }
    if (!res.ok) await failFor(res, path, this.describe(path));
    const bytes = await this.#body(res, path);
    if (res.status === 206) return bytes.subarray(0, end - start);
    this.#whole = { path, bytes };
    return bytes.subarray(start, end);
  }

  async #body(res: Response, path: string): Promise<Uint8Array> {
    const total = Number(res.headers.get("content-length") ?? 0);
    if (!res.body) return new Uint8Array(await res.arrayBuffer());
    const chunks: Uint8Array[] = [];
    let done = 0;
    try {
      const reader = res.body.getReader();
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        chunks.push(value);
        done += value.byteLength;
        this.#onProgress?.(done, total, path);
      }
    } catch (e) {
      throw new TandemError(
        "network",
        `Cannot download ${path} from ${this.describe(path)}: ${(e as Error).message}`,
      );
    }
    if (total && done !== total) {
      throw new TandemError(
        "network",
        `Cannot download ${path} from ${this.describe(path)}: got ${done} of ${total} bytes`,
      );
    }
    const out = new Uint8Array(done);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  }

  /** Asks the server with HEAD whether a file exists. */
  async exists(path: string): Promise<boolean> {
    const res = await this.#request(path, "HEAD");
    await res.body?.cancel();
    if (res.ok) return true;
    if (res.status === 404) return false;
    return await failFor(res, path, this.describe(path));
  }

  async #request(path: string, method: string, extra?: Record<string, string>): Promise<Response> {
    const url = this.describe(path);
    const headers = extra ? { ...this.#headers, ...extra } : this.#headers;
    try {
      return await this.#fetch(url, { method, headers, redirect: "follow" });
    } catch (e) {
      throw new TandemError(
        "network",
        `Cannot download ${path} from ${url}: ${(e as Error).message}`,
      );
    }
  }
}

/**
 * Turns a failed response into the TandemError a user can act on (`not_found`, `unauthorized`
 * or `network`), naming the file and URL; the hub's `x-error-code` refines 401/404.
 */
export async function failFor(res: Response, path: string, url: string): Promise<never> {
  await res.body?.cancel();
  const why = `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`;
  const hubCode = res.headers.get("x-error-code"); // the hub says RepoNotFound, GatedRepo, ...
  if (hubCode === "RepoNotFound") {
    throw new TandemError(
      "not_found",
      `Cannot download ${path} from ${url}: ${why} (no such repository, or it is private: set HF_TOKEN)`,
    );
  }
  if (hubCode === "RevisionNotFound") {
    throw new TandemError(
      "not_found",
      `Cannot download ${path} from ${url}: ${why} (no such branch, tag or commit)`,
    );
  }
  if (res.status === 401 || res.status === 403) {
    throw new TandemError(
      "unauthorized",
      `Cannot download ${path} from ${url}: ${why} (a private or gated repository needs a token: set HF_TOKEN)`,
    );
  }
  if (res.status === 404) {
    throw new TandemError(
      "not_found",
      `Cannot download ${path} from ${url}: ${why} (no such file)`,
    );
  }
  throw new TandemError("network", `Cannot download ${path} from ${url}: ${why}`);
}
