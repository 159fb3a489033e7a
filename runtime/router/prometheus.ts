/**
 * Counters and gauges in the Prometheus text exposition format (version 0.0.4), with a small
 * parser for tests and benches. No dependencies, no host APIs.
 *
 * @example
 * ```ts
 * import { MetricRegistry } from "./prometheus.ts";
 * const reg = new MetricRegistry();
 * const frames = reg.counter("tandem_edge_frames_total", "Frames run by the edge.");
 * frames.inc({ kind: "draft" });
 * console.log(reg.format());
 * // # HELP tandem_edge_frames_total Frames run by the edge.
 * // # TYPE tandem_edge_frames_total counter
 * // tandem_edge_frames_total{kind="draft"} 1
 * ```
 *
 * @module
 */

/** Label names to values. */
export type Labels = Record<string, string>;

/** One metric family: a name, a help line, a type, and a value per label set. */
export class Metric {
  /** Metric name. */
  readonly name: string;
  /** Help text. */
  readonly help: string;
  /** Prometheus type. */
  readonly type: "counter" | "gauge";
  readonly #values = new Map<string, number>();

  /** Use {@linkcode MetricRegistry.counter} or {@linkcode MetricRegistry.gauge}. */
  constructor(name: string, help: string, type: "counter" | "gauge") {
    this.name = name;
    this.help = help;
    this.type = type;
  }

  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }

  /** Sets the series with these labels (gauges). */
  set(labels: Labels, value: number): void {
    this.#values.set(labelText(labels), value);
  }

  /** The value of a series (0 when never touched). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels)) ?? 0;
  }

  /** The family as exposition text. */
  format(): string {
    const lines = [
      `# HELP ${this.name} ${this.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`,
      `# TYPE ${this.name} ${this.type}`,
    ];
    if (this.#values.size === 0) lines.push(`${this.name} 0`);
    for (const [labels, v] of this.#values) lines.push(`${this.name}${labels} ${numberText(v)}`);
    return lines.join("\n") + "\n";
  }
}

function labelText(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  return `{${keys.map((k) => `${k}="${esc(labels[k])}"`).join(",")}}`;
}

function numberText(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  return String(v);
}

/** A set of metric families, formatted together. */
export class MetricRegistry {
  readonly #metrics = new Map<string, Metric>();

  /** The counter with this name (created on first use). */
  counter(name: string, help: string): Metric {
    return this.#get(name, help, "counter");
  }

  /** The gauge with this name (created on first use). */
  gauge(name: string, help: string): Metric {
    return this.#get(name, help, "gauge");
  }

  /** Every family as exposition text (`text/plain; version=0.0.4`). */
  format(): string {
    return [...this.#metrics.values()].map((m) => m.format()).join("");
  }

  #get(name: string, help: string, type: "counter" | "gauge"): Metric {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) {
      throw new TypeError(`Cannot register metric: ${JSON.stringify(name)} is not a valid name`);
    }
    let m = this.#metrics.get(name);
    if (!m) this.#metrics.set(name, m = new Metric(name, help, type));
    return m;
  }
}

/** A parsed sample line. */
export interface Sample {
  /** Metric name. */
  name: string;
  /** Labels. */
  labels: Labels;
  /** Value. */
  value: number;
}

/**
 * Parses exposition text into samples; throws `SyntaxError` naming the first bad line.
 *
 * @example
 * ```ts
 * import { parsePrometheus } from "./prometheus.ts";
 * console.log(parsePrometheus('up{job="edge"} 1\n')); // [{ name: "up", labels: { job: "edge" }, value: 1 }]
 * ```
 */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/;
  const label = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  for (const [i, raw] of text.split("\n").entries()) {
    if (raw.trim() === "" || raw.startsWith("#")) continue;
    const m = line.exec(raw);
    const value = m
      ? Number(m[4].replace(/^\+Inf$/, "Infinity").replace(/^-Inf$/, "-Infinity"))
      : NaN;
    if (!m || (Number.isNaN(value) && m[4] !== "NaN")) {
      throw new SyntaxError(`Cannot parse metrics line ${i + 1}: ${raw.slice(0, 80)}`);
    }
    const labels: Labels = {};
    const body = m[3] ?? "";
    label.lastIndex = 0;
    while (label.lastIndex < body.length) {
      const l = label.exec(body);
      if (!l) throw new SyntaxError(`Cannot parse labels on metrics line ${i + 1}: ${body}`);
      labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    out.push({ name: m[1], labels, value });
  }
  return out;
}
