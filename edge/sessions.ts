/**
 * The edge's session table: per-session state (a KV cache for layers [K, L)) under a total
 * memory budget, a time-to-live, and a cap on the number of sessions, with least-recently-used
 * eviction. No timers: expired sessions are swept whenever the table is touched, so an idle
 * edge holds no pending work (and tests need no cleanup).
 *
 * An evicted or expired session is simply gone: the next request for it gets
 * `session_not_found`, and the device rebuilds it by replaying its boundary activations.
 *
 * @example
 * ```ts
 * import { SessionStore } from "./sessions.ts";
 * const store = new SessionStore<{ bytes: number }>({ maxSessions: 2, budgetBytes: 1e6, ttlMs: 60_000 });
 * const id = store.add({ bytes: 0 });
 * store.get(id).bytes = 1000;
 * store.charge(id);
 * console.log(store.totalBytes); // 1000
 * ```
 *
 * @module
 */

import { TandemError } from "../runtime/errors.ts";

/** Limits of a {@linkcode SessionStore}. */
export interface SessionLimits {
  /** Most sessions held at once; adding one more evicts the least recently used. */
  maxSessions: number;
  /** Total bytes the sessions may hold; past it, least recently used sessions are evicted. */
  budgetBytes: number;
  /** A session unused for this long is dropped. */
  ttlMs: number;
}

interface Entry<T> {
  value: T;
  lastUsed: number;
  bytes: number;
  owner: string;
}

/** Sessions by id, in least-recently-used order. */
export class SessionStore<T extends { bytes: number }> {
  /** The limits in force. */
  readonly limits: SessionLimits;
  /** Sessions dropped so far to stay within the limits (not counting expiry or delete). */
  evictions = 0;
  /** Sessions dropped so far because their TTL passed. */
  expirations = 0;
  readonly #entries = new Map<string, Entry<T>>();
  readonly #now: () => number;
  readonly #owned = new Map<string, number>();
  readonly #onDrop?: (value: T) => void;
  #total = 0;

  /**
   * Creates an empty table; `now` (default `Date.now`) is the clock for TTLs; `onDrop` hears
   * of every session dropped (deleted, evicted, expired or cleared).
   */
  constructor(limits: SessionLimits, now: () => number = Date.now, onDrop?: (value: T) => void) {
    this.limits = limits;
    this.#now = now;
    this.#onDrop = onDrop;
  }

  /** Number of sessions held. */
  get size(): number {
    this.sweep();
    return this.#entries.size;
  }

  /** Bytes charged to all sessions. */
  get totalBytes(): number {
    return this.#total;
  }

  /**
   * Adds a session under a fresh UUID (evicting the least recently used when full), owned by
   * `owner` (the principal that opened it; "" when unowned).
   */
  add(value: T, owner = ""): string {
    this.sweep();
    while (this.#entries.size >= this.limits.maxSessions) this.#evictOldest();
    const id = crypto.randomUUID();
    this.#entries.set(id, { value, lastUsed: this.#now(), bytes: 0, owner });
    this.#owned.set(owner, (this.#owned.get(owner) ?? 0) + 1);
    this.charge(id);
    return id;
  }

  /** Number of sessions held for `owner`. */
  countOwned(owner: string): number {
    this.sweep();
    return this.#owned.get(owner) ?? 0;
  }

  /**
   * The session with this id, marked as just used. Throws `session_not_found` when it is not
   * held — or, when `owner` is given, is held for another owner (indistinguishable answers).
   */
  get(id: string, owner?: string): T {
    this.sweep();
    const e = this.#entries.get(id);
    if (!e || (owner !== undefined && e.owner !== owner)) {
      throw new TandemError(
        "session_not_found",
        `Cannot use session ${
          id.slice(0, 64)
        }: the edge does not hold it (expired, evicted, restarted or never opened); reopen it and replay`,
      );
    }
    this.#entries.delete(id);
    e.lastUsed = this.#now();
    this.#entries.set(id, e);
    return e.value;
  }

  /** Whether a session is held (does not mark it used). */
  has(id: string): boolean {
    this.sweep();
    return this.#entries.has(id);
  }

  /**
   * Re-reads a session's `bytes` and evicts other sessions, least recently used first, until
   * the total fits the budget. Throws `capacity` (and drops the session) if it alone does not.
   */
  charge(id: string): void {
    const e = this.#entries.get(id);
    if (!e) return;
    this.#total += e.value.bytes - e.bytes;
    e.bytes = e.value.bytes;
    if (e.bytes > this.limits.budgetBytes) {
      this.delete(id);
      throw new TandemError(
        "capacity",
        `Cannot hold session ${id}: it needs ${e.bytes} bytes of KV cache, the edge's budget is ${this.limits.budgetBytes}`,
      );
    }
    while (this.#total > this.limits.budgetBytes) {
      const oldest = this.#entries.keys().next().value!;
      if (oldest === id) break;
      this.#evictOldest();
    }
  }

  /** Drops a session (only if held for `owner`, when given); returns whether it was. */
  delete(id: string, owner?: string): boolean {
    const e = this.#entries.get(id);
    if (!e || (owner !== undefined && e.owner !== owner)) return false;
    this.#total -= e.bytes;
    this.#entries.delete(id);
    const owned = (this.#owned.get(e.owner) ?? 1) - 1;
    if (owned > 0) this.#owned.set(e.owner, owned);
    else this.#owned.delete(e.owner);
    this.#onDrop?.(e.value);
    return true;
  }

  /** Drops every session (an edge restart, as far as sessions go). */
  clear(): void {
    if (this.#onDrop) { for (const e of this.#entries.values()) this.#onDrop(e.value); }
    this.#entries.clear();
    this.#owned.clear();
    this.#total = 0;
  }

  /** Drops sessions whose TTL has passed. */
  sweep(): void {
    const cutoff = this.#now() - this.limits.ttlMs;
    for (const [id, e] of this.#entries) {
      if (e.lastUsed > cutoff) break; // in LRU order: the rest are newer
      this.delete(id);
      this.expirations++;
    }
  }

  #evictOldest(): void {
    const oldest = this.#entries.keys().next().value;
    if (oldest === undefined) return;
    this.delete(oldest);
    this.evictions++;
  }
}
