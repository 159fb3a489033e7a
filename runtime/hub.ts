/**
 * The Hugging Face hub as a {@linkcode FileSource}, with a cache that stays correct when a
 * branch moves.
 *
 * A load first asks the hub which commit the revision names
 * (`GET {endpoint}/api/models/{owner}/{repo}/revision/{revision}`, one small request), then
 * reads every file at that commit (`{endpoint}/{owner}/{repo}/resolve/{commit}/{file}`), so the
 * files of one load always come from one commit even if someone pushes meanwhile. The
 * {@linkcode FileCache} keys:
 *
 * | key                                   | holds                                          |
 * | ------------------------------------- | ---------------------------------------------- |
 * | `{owner}/{repo}/refs/{revision}`      | the commit a branch or tag last resolved to    |
 * | `{owner}/{repo}/snapshots/{commit}/{file}` | a file at a commit (never changes)        |
 * | `…/{file}#exists`, `…/{file}#missing` | the hub said whether the file exists           |
 * | `…/{file}#{start}-{end}`              | a byte range of the file (a partial load)      |
 * | `{owner}/{repo}/unpinned/{revision}/{file}` | a file from a server without the API (kept forever) |
 *
 * A commit hash as the revision needs no request. Offline (`offline: true`, hosts pass
 * `HF_HUB_OFFLINE=1`) or when the hub cannot be reached, the last resolved commit is used from
 * the cache; a server without the revision API (a plain mirror: 404 without a hub error code)
 * falls back to caching by revision name, as a pinned tag would be.
 *
 * @example
 * ```ts
 * import { HubSource } from "./hub.ts";
 * const hub = new HubSource("hf:karpathy/tinyllamas", { token: "hf_..." });
 * const config = JSON.parse(new TextDecoder().decode(await hub.read("config.json")));
 * console.log(await hub.commit()); // the 40-hex commit it was read at
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";
import { failFor, type FileCache, type FileSource, HttpSource, type ProgressFn } from "./source.ts";

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
 * import { parseHubSpec } from "./hub.ts";
 * console.log(parseHubSpec("hf:karpathy/tinyllamas@main")); // { repo: "karpathy/tinyllamas", revision: "main" }
 * ```
 */
export function parseHubSpec(spec: string): HubSpec {
  const m = /^hf:([\w.-]+\/[\w.-]+)(?:@([\w./-]+))?$/.exec(spec);
  const rev = m?.[2] ?? "main";
  if (!m || m[1].includes("..") || rev.split("/").some((p) => p === "" || p === "..")) {
    throw new TandemError(
      "bad_argument",
      `Cannot parse model spec ${JSON.stringify(spec)}: expected hf:owner/repo[@revision]`,
    );
  }
  return { repo: m[1], revision: rev };
}

/** Options of {@linkcode HubSource}. */
export interface HubSourceOptions {
  /** Hub URL (default `https://huggingface.co`; hosts pass `HF_ENDPOINT`). */
  endpoint?: string;
  /** Access token sent as a bearer token (hosts pass `HF_TOKEN`). */
  token?: string;
  /** Where downloaded files are kept; without one every read downloads. */
  cache?: FileCache;
  /** Never touch the network: use the commit and files already cached (hosts pass `HF_HUB_OFFLINE`). */
  offline?: boolean;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Called as bytes arrive. */
  onProgress?: ProgressFn;
}

const COMMIT = /^[0-9a-f]{40}$/;

/** Where the files of one load come from: a commit (or, unpinned, the revision's name). */
interface Snapshot {
  commit?: string;
  http: HttpSource;
  keys: string;
}

/**
 * A Hugging Face hub repository as a FileSource, read at one commit and cached.
 *
 * @example
 * ```ts
 * import { HubSource } from "./hub.ts";
 * const hub = new HubSource("hf:owner/repo@v1", { endpoint: "http://127.0.0.1:9000" });
 * console.log(hub.describe("config.json")); // http://127.0.0.1:9000/owner/repo/resolve/v1/config.json
 * ```
 */
export class HubSource implements FileSource {
  /** The repository and revision. */
  readonly spec: HubSpec;
  readonly #endpoint: string;
  readonly #headers: Record<string, string>;
  readonly #options: HubSourceOptions;
  #snapshot?: Promise<Snapshot>;

  /** Creates a source for `hf:owner/repo[@revision]`. Nothing is fetched until a read. */
  constructor(spec: string, options: HubSourceOptions = {}) {
    this.spec = parseHubSpec(spec);
    this.#endpoint = (options.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
    this.#headers = options.token ? { Authorization: `Bearer ${options.token}` } : {};
    this.#options = options;
  }

  /** The download URL of a file at the named revision (or, without a path, the spec). */
  describe(path?: string): string {
    return path === undefined
      ? `hf:${this.spec.repo}@${this.spec.revision}`
      : this.#http(this.spec.revision).describe(path);
  }

  /** The commit the files are read at (resolved once), or undefined from a server without the API. */
  async commit(): Promise<string | undefined> {
    return (await this.#resolve()).commit;
  }

  /** Reads a file from the cache, or downloads and caches it. */
  async read(path: string): Promise<Uint8Array> {
    checkPath(path);
    const snap = await this.#resolve();
    const key = snap.keys + path;
    const hit = await this.#options.cache?.get(key);
    if (hit) return hit;
    if (this.#options.offline) throw this.#notCached(path);
    const bytes = await snap.http.read(path);
    await this.#options.cache?.put(key, bytes);
    return bytes;
  }

  /**
   * Reads bytes [start, end) of a file: from the cached file if there is one, else from a cached
   * copy of this very range (keyed `{file}#{start}-{end}`), else with a range request.
   */
  async readRange(path: string, start: number, end: number): Promise<Uint8Array> {
    checkPath(path);
    const snap = await this.#resolve();
    const key = snap.keys + path;
    const cache = this.#options.cache;
    // The whole file cached: read only the range from it.
    const cached = cache?.getRange
      ? await cache.getRange(key, start, end)
      : (await cache?.get(key))?.subarray(start, end);
    if (cached) return cached;
    const rangeKey = `${key}#${start}-${end}`;
    const hit = await cache?.get(rangeKey);
    if (hit) return hit;
    if (this.#options.offline) throw this.#notCached(path);
    const bytes = await snap.http.readRange(path, start, end);
    await cache?.put(rangeKey, bytes);
    return bytes;
  }

  /** Whether a file exists, answered from the cache when it can be. */
  async exists(path: string): Promise<boolean> {
    checkPath(path);
    const snap = await this.#resolve();
    const key = snap.keys + path;
    const cache = this.#options.cache;
    if (cache) {
      if (await cache.has(key) || await cache.has(key + "#exists")) return true;
      if (await cache.has(key + "#missing")) return false;
    }
    if (this.#options.offline) throw this.#notCached(path);
    const found = await snap.http.exists(path);
    await cache?.put(key + (found ? "#exists" : "#missing"), new Uint8Array([0]));
    return found;
  }

  #http(revision: string): HttpSource {
    const { fetch, onProgress } = this.#options;
    const base = `${this.#endpoint}/${this.spec.repo}/resolve/${encodeURIComponent(revision)}/`;
    return new HttpSource(base, { fetch, onProgress, headers: this.#headers });
  }

  #pinned(commit: string): Snapshot {
    return { commit, http: this.#http(commit), keys: `${this.spec.repo}/snapshots/${commit}/` };
  }

  #resolve(): Promise<Snapshot> {
    return this.#snapshot ??= this.#lookup();
  }

  async #lookup(): Promise<Snapshot> {
    const { repo, revision } = this.spec;
    if (COMMIT.test(revision)) return this.#pinned(revision);
    const refKey = `${repo}/refs/${revision}`;
    const cached = async (): Promise<string | undefined> => {
      const bytes = await this.#options.cache?.get(refKey);
      const commit = bytes && new TextDecoder().decode(bytes).trim();
      return commit && COMMIT.test(commit) ? commit : undefined;
    };
    if (this.#options.offline) {
      const commit = await cached();
      if (!commit) {
        throw new TandemError(
          "not_found",
          `Cannot load hf:${repo}@${revision} offline: it was never downloaded into the cache`,
        );
      }
      return this.#pinned(commit);
    }
    const url = `${this.#endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    let res: Response;
    try {
      res = await (this.#options.fetch ?? fetch)(url, { headers: this.#headers });
    } catch (e) {
      const commit = await cached(); // unreachable hub: the last known commit, if any
      if (commit) return this.#pinned(commit);
      throw new TandemError(
        "network",
        `Cannot resolve hf:${repo}@${revision} at ${url}: ${(e as Error).message}`,
      );
    }
    if (res.ok) {
      const commit = await commitOf(res);
      if (commit) {
        await this.#options.cache?.put(refKey, new TextEncoder().encode(commit));
        return this.#pinned(commit);
      }
    } else if (
      res.status === 401 || res.status === 403 || res.headers.get("x-error-code") !== null
    ) {
      await failFor(res, `revision ${revision}`, url);
    } else {
      await res.body?.cancel();
      if (res.status >= 500) {
        const commit = await cached();
        if (commit) return this.#pinned(commit);
      }
    }
    // A server without the revision API (or an answer without a commit): cache by name.
    return {
      http: this.#http(revision),
      keys: `${repo}/unpinned/${revision}/`,
    };
  }

  #notCached(path: string): TandemError {
    return new TandemError(
      "not_found",
      `Cannot read ${path} of hf:${this.spec.repo}@${this.spec.revision} offline: not in the cache`,
    );
  }
}

/** The `sha` of a revision answer, or undefined when it holds none. */
async function commitOf(res: Response): Promise<string | undefined> {
  try {
    const body = await res.json();
    const sha = body?.sha;
    return typeof sha === "string" && COMMIT.test(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

function checkPath(path: string): void {
  if (path.split("/").some((p) => p === ".." || p === "" || p === ".")) {
    throw new TandemError(
      "bad_argument",
      `Cannot read ${JSON.stringify(path)}: not a plain relative path`,
    );
  }
}
