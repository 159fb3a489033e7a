/**
 * Shared bench helpers: a table printer and the JSON results writer.
 *
 * @module
 */

/** Prints rows as an aligned text table (first row is the header). */
export function printTable(rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map((c) => typeof c === "number" ? fmt(c) : c));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  for (const [j, r] of cells.entries()) {
    console.log(r.map((c, i) => c.padEnd(widths[i])).join("  "));
    if (j === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

/** Formats a number with 3 significant digits (integers as they are). */
export function fmt(x: number): string {
  if (Number.isInteger(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(0);
  return x.toPrecision(3);
}

/** Writes `bench/results/<name>.json` with the figures and the machine it ran on. */
export async function writeResults(name: string, figures: unknown): Promise<string> {
  const path = new URL(`./results/${name}.json`, import.meta.url);
  const body = {
    bench: name,
    date: new Date().toISOString(),
    host: { deno: Deno.version.deno, v8: Deno.version.v8, cores: navigator.hardwareConcurrency },
    figures,
  };
  await Deno.writeTextFile(path, JSON.stringify(body, null, 2) + "\n");
  return path.pathname;
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
