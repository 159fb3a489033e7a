/**
 * Where model files come from: a folder-like {@linkcode FileSource} that reads files by
 * relative path. This module holds the portable ones (HTTP and the Hugging Face hub, both over
 * `fetch`); a local directory and the on-disk cache live in `hosts/fs.ts`.
 *
 * Hub files resolve as `{endpoint}/{owner}/{repo}/resolve/{revision}/{file}` (endpoint default
 * `https://huggingface.co`, revision default `main`) and are kept in a {@linkcode FileCache}
 * under `{owner}/{repo}/{revision}/{file}`, so a second load does not touch the network. A
 * file the hub reported missing is remembered too (`{file}#missing`).
 *
 * @example
 * ```ts
 * import { HubSource } from "./source.ts";
 * const hub = new HubSource("hf:karpathy/tinyllamas", { token: "hf_..." });
 * const config = JSON.parse(new TextDecoder().decode(await hub.read("config.json")));
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
  /** Where a file (or, without a path, the whole source) lives: a path or URL for messages. */
  describe(path?: string): string;
}

/** A byte store keyed by relative path (the hub cache). Implemented on disk in hosts/fs.ts. */
export interface FileCache {
  /** The bytes stored under `key`, or undefined. */
  get(key: string): Promise<Uint8Array | undefined>;
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

  async #request(path: string, method: string): Promise<Response> {
    const url = this.describe(path);
    try {
      return await this.#fetch(url, { method, headers: this.#headers, redirect: "follow" });
    } catch (e) {
      throw new TandemError(
        "network",
        `Cannot download ${path} from ${url}: ${(e as Error).message}`,
      );
    }
  }
}

/** Turns a failed response into the TandemError a user can act on. */
async function failFor(res: Response, path: string, url: string): Promise<never> {
  await res.body?.cancel();
  const why = `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`;
  const hubCode = res.headers.get("x-error-code"); // the hub says RepoNotFound, GatedRepo, ...
  if (hubCode === "RepoNotFound") {
    throw new TandemError(
      "not_found",
      `Cannot download ${path} from ${url}: ${why} (no such repository, or it is private: set HF_TOKEN)`,
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

/** A parsed `hf:owner/repo[@revision]` spec. */
export interface HubSpec {
  /** `owner/repo`. */
  repo: string;
  /** Branch, tag or commit (default `main`). */
  revision: string;
}

/**
 * Parses `hf:owner/repo[@revision]`. Throws `bad_argument` for anything else.
 *
 * @example
 * ```ts
 * import { parseHubSpec } from "./source.ts";
 * console.log(parseHubSpec("hf:karpathy/tinyllamas@main")); // { repo: "karpathy/tinyllamas", revision: "main" }
 * ```
 */
export function parseHubSpec(spec: string): HubSpec {
  const m = /^hf:([\w.-]+\/[\w.-]+)(?:@([\w./-]+))?$/.exec(spec);
  if (!m || m[1].includes("..") || (m[2] ?? "").includes("..")) {
    throw new TandemError(
      "bad_argument",
      `Cannot parse model spec ${JSON.stringify(spec)}: expected hf:owner/repo[@revision]`,
    );
  }
  return { repo: m[1], revision: m[2] ?? "main" };
}

/** Options of {@linkcode HubSource}. */
export interface HubSourceOptions {
  /** Hub URL (default `https://huggingface.co`; hosts pass `HF_ENDPOINT`). */
  endpoint?: string;
  /** Access token sent as a bearer token (hosts pass `HF_TOKEN`). */
  token?: string;
  /** Where downloaded files are kept; without one every read downloads. */
  cache?: FileCache;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Called as bytes arrive. */
  onProgress?: ProgressFn;
}

/**
 * A Hugging Face hub repository as a FileSource, cached.
 *
 * @example
 * ```ts
 * import { HubSource } from "./source.ts";
 * const hub = new HubSource("hf:owner/repo@v1", { endpoint: "http://127.0.0.1:9000" });
 * console.log(hub.describe("config.json")); // http://127.0.0.1:9000/owner/repo/resolve/v1/config.json
 * ```
 */
export class HubSource implements FileSource {
  /** The repository and revision. */
  readonly spec: HubSpec;
  readonly #http: HttpSource;
  readonly #cache?: FileCache;

  /** Creates a source for `hf:owner/repo[@revision]`. */
  constructor(spec: string, options: HubSourceOptions = {}) {
    this.spec = parseHubSpec(spec);
    const endpoint = (options.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
    const rev = encodeURIComponent(this.spec.revision);
    this.#http = new HttpSource(`${endpoint}/${this.spec.repo}/resolve/${rev}/`, {
      fetch: options.fetch,
      headers: options.token ? { Authorization: `Bearer ${options.token}` } : {},
      onProgress: options.onProgress,
    });
    this.#cache = options.cache;
  }

  /** The download URL of a file (or of the repository). */
  describe(path?: string): string {
    return path === undefined
      ? `hf:${this.spec.repo}@${this.spec.revision}`
      : this.#http.describe(path);
  }

  /** Reads a file from the cache, or downloads and caches it. */
  async read(path: string): Promise<Uint8Array> {
    const key = this.#key(path);
    const hit = await this.#cache?.get(key);
    if (hit) return hit;
    const bytes = await this.#http.read(path);
    await this.#cache?.put(key, bytes);
    return bytes;
  }

  /** Whether a file exists, answered from the cache when it can be. */
  async exists(path: string): Promise<boolean> {
    const key = this.#key(path);
    if (this.#cache) {
      if (await this.#cache.has(key)) return true;
      if (await this.#cache.has(key + "#missing")) return false;
    }
    const found = await this.#http.exists(path);
    if (!found) await this.#cache?.put(key + "#missing", new Uint8Array([0]));
    return found;
  }

  #key(path: string): string {
    if (path.split("/").some((p) => p === ".." || p === "")) {
      throw new TandemError(
        "bad_argument",
        `Cannot read ${JSON.stringify(path)}: not a plain relative path`,
      );
    }
    return `${this.spec.repo}/${this.spec.revision}/${path}`;
  }
}
