/**
 * A progress bar for long command-line work (loading and packing weights, benches, builds).
 * It writes to stderr only, so stdout stays the command's output: on a terminal one line
 * redrawn in place (`pack  [██████······] 50% device.safetensors`), otherwise plain lines
 * (one per step, or one per 10% when there are many steps), which read well in CI logs.
 *
 * @example
 * ```ts
 * import { Progress } from "./_progress.ts";
 * const p = new Progress("pack", 3);
 * p.tick("device shard");
 * p.tick("edge shard");
 * p.tick("manifest");
 * p.done("packed 2 shards");
 * ```
 *
 * @module
 */

import process from "node:process";

/** Where progress goes: anything with `write` (default: process.stderr). */
export interface ProgressSink {
  /** Writes text. */
  write(text: string): unknown;
  /** Whether it is a terminal (redraw in place) or not (plain lines). */
  isTTY?: boolean;
}

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** Where to write (default process.stderr). */
  sink?: ProgressSink;
  /** "items" (default) or "bytes" (shows sizes as KB/MB). */
  unit?: "items" | "bytes";
  /** Width of the bar in characters (default 24). */
  width?: number;
}

const fmtBytes = (n: number): string =>
  n < 1024
    ? `${n} B`
    : n < 2 ** 20
    ? `${(n / 1024).toFixed(1)} KB`
    : `${(n / 2 ** 20).toFixed(1)} MB`;

/** One progress bar; see the module doc. */
export class Progress {
  /** What is being done, shown first. */
  readonly label: string;
  /** Steps (or bytes) in all; 0 when unknown. */
  total: number;
  /** Steps (or bytes) done. */
  current = 0;
  readonly #sink: ProgressSink;
  readonly #tty: boolean;
  readonly #unit: "items" | "bytes";
  readonly #width: number;
  #lastDraw = 0;
  #lastDecile = -1;
  #closed = false;

  /** Starts a bar for `total` steps (or bytes with `unit: "bytes"`). */
  constructor(label: string, total: number, options: ProgressOptions = {}) {
    this.label = label;
    this.total = total;
    this.#sink = options.sink ?? process.stderr;
    this.#tty = !!this.#sink.isTTY;
    this.#unit = options.unit ?? "items";
    this.#width = options.width ?? 24;
  }

  /**
   * Advances by `n` (default 1) and shows `what` is under way.
   *
   * @example
   * ```ts
   * import { Progress } from "./_progress.ts";
   * new Progress("bench", 10).tick("run 1");
   * ```
   */
  tick(what = "", n = 1): void {
    this.update(this.current + n, what);
  }

  /**
   * Sets how much is done (and, optionally, a new total).
   *
   * @example
   * ```ts
   * import { Progress } from "./_progress.ts";
   * new Progress("download", 0, { unit: "bytes" }).update(512, "model.bin", 2048);
   * ```
   */
  update(done: number, what = "", total?: number): void {
    if (this.#closed) return;
    if (total !== undefined) this.total = total;
    this.current = done;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 0;
    if (this.#tty) {
      const now = performance.now();
      if (now - this.#lastDraw < 50 && frac < 1) return; // at most 20 redraws a second
      this.#lastDraw = now;
      const fill = Math.round(frac * this.#width);
      const bar = "█".repeat(fill) + "·".repeat(this.#width - fill);
      this.#sink.write(`\r\x1b[2K${this.label}  [${bar}] ${this.#amount(frac)} ${what}`);
      return;
    }
    const decile = Math.floor(frac * 10);
    const fewSteps = this.#unit === "items" && this.total > 0 && this.total <= 20;
    if (!fewSteps && decile === this.#lastDecile) return;
    this.#lastDecile = decile;
    this.#sink.write(`${this.label}: ${this.#amount(frac)}${what ? " " + what : ""}\n`);
  }

  /**
   * A `(done, total, what)` callback (the loaders' `onProgress`) that updates this bar.
   *
   * @example
   * ```ts
   * import { Progress } from "./_progress.ts";
   * const onProgress = new Progress("download", 0, { unit: "bytes" }).callback();
   * onProgress(1024, 4096, "model.safetensors");
   * ```
   */
  callback(): (done: number, total: number, what: string) => void {
    return (done, total, what) => this.update(done, what, total);
  }

  /**
   * Ends the bar: clears it on a terminal, then prints `message` (if any) as a plain line.
   *
   * @example
   * ```ts
   * import { Progress } from "./_progress.ts";
   * new Progress("pack", 1).done("packed");
   * ```
   */
  done(message = ""): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#tty) this.#sink.write("\r\x1b[2K");
    if (message) this.#sink.write(`${this.label}: ${message}\n`);
  }

  #amount(frac: number): string {
    if (this.#unit === "bytes") {
      const of = this.total > 0 ? ` / ${fmtBytes(this.total)}` : "";
      return `${fmtBytes(this.current)}${of}`;
    }
    if (this.total <= 0) return `${this.current}`;
    return `${Math.round(frac * 100)}% (${this.current}/${this.total})`;
  }
}
