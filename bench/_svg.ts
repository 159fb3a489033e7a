/**
 * A hand-written SVG scatter plot (no dependencies): series of labelled points, a log-scale x
 * axis, a linear y axis, a legend.
 *
 * @example
 * ```ts
 * import { scatterSvg } from "./_svg.ts";
 * const svg = scatterSvg({ title: "t", xLabel: "ms", yLabel: "%", series: [
 *   { name: "LAN", points: [{ x: 10, y: 70, label: "K=4" }] }] });
 * console.log(svg.startsWith("<svg"));
 * ```
 *
 * @module
 */

/** One labelled point. */
export interface Point {
  /** x value (> 0: the axis is logarithmic). */
  x: number;
  /** y value. */
  y: number;
  /** Text beside the point. */
  label?: string;
  /** Hollow marker (e.g. a modelled rather than measured point). */
  hollow?: boolean;
}

/** A plot. */
export interface Plot {
  /** Title. */
  title: string;
  /** x-axis label. */
  xLabel: string;
  /** y-axis label. */
  yLabel: string;
  /** Series, one colour each. */
  series: { name: string; points: Point[] }[];
  /** A note under the title. */
  note?: string;
}

const COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Renders the plot as an SVG document. */
export function scatterSvg(plot: Plot): string {
  const W = 820, H = 520, left = 70, right = 180, top = 60, bottom = 60;
  const pts = plot.series.flatMap((s) => s.points);
  const xs = pts.map((p) => Math.log10(Math.max(p.x, 1e-3)));
  const x0 = Math.floor(Math.min(...xs)), x1 = Math.ceil(Math.max(...xs) + 1e-9);
  const y0 = Math.min(0, ...pts.map((p) => p.y)), y1 = Math.max(100, ...pts.map((p) => p.y));
  const X = (x: number) =>
    left + (Math.log10(Math.max(x, 1e-3)) - x0) / (x1 - x0 || 1) * (W - left - right);
  const Y = (y: number) => H - bottom - (y - y0) / (y1 - y0 || 1) * (H - top - bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16">${esc(plot.title)}</text>`,
  ];
  if (plot.note) {
    out.push(`<text x="${W / 2}" y="42" text-anchor="middle" fill="#555">${esc(plot.note)}</text>`);
  }
  for (let e = x0; e <= x1; e++) {
    const x = X(10 ** e);
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${H - bottom}" stroke="#eee"/>`,
      `<text x="${x}" y="${H - bottom + 18}" text-anchor="middle">${10 ** e}</text>`,
    );
  }
  for (let y = Math.ceil(y0 / 20) * 20; y <= y1; y += 20) {
    out.push(
      `<line x1="${left}" y1="${Y(y)}" x2="${W - right}" y2="${Y(y)}" stroke="#eee"/>`,
      `<text x="${left - 8}" y="${Y(y) + 4}" text-anchor="end">${y}</text>`,
    );
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${W - left - right}" height="${
      H - top - bottom
    }" fill="none" stroke="#333"/>`,
    `<text x="${(left + W - right) / 2}" y="${H - 16}" text-anchor="middle">${
      esc(plot.xLabel)
    }</text>`,
    `<text transform="translate(18 ${(top + H - bottom) / 2}) rotate(-90)" text-anchor="middle">${
      esc(plot.yLabel)
    }</text>`,
  );
  plot.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    for (const p of s.points) {
      const fill = p.hollow ? "white" : c;
      out.push(
        `<circle cx="${X(p.x).toFixed(1)}" cy="${
          Y(p.y).toFixed(1)
        }" r="5" fill="${fill}" stroke="${c}" stroke-width="2"/>`,
      );
      if (p.label) {
        out.push(
          `<text x="${(X(p.x) + 7).toFixed(1)}" y="${
            (Y(p.y) - 6).toFixed(1)
          }" fill="${c}" font-size="10">${esc(p.label)}</text>`,
        );
      }
    }
    const ly = top + 10 + 20 * i;
    out.push(
      `<circle cx="${W - right + 20}" cy="${ly}" r="5" fill="${c}"/>`,
      `<text x="${W - right + 32}" y="${ly + 4}">${esc(s.name)}</text>`,
    );
  });
  const ly = top + 10 + 20 * plot.series.length;
  out.push(
    `<circle cx="${W - right + 20}" cy="${ly}" r="5" fill="white" stroke="#333" stroke-width="2"/>`,
    `<text x="${W - right + 32}" y="${ly + 4}">modelled</text>`,
    "</svg>",
  );
  return out.join("\n") + "\n";
}
