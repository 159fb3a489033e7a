/**
 * Reads a safetensors file from a {@linkcode FileSource}, fetching only the tensors a load
 * needs when the source can read byte ranges: the 8-byte length, the JSON header, then the
 * wanted tensors' bytes, neighbours merged into one read when less than {@linkcode RANGE_GAP}
 * apart. A device that holds layers [0, K) of a 30-layer model thus downloads its own layers and
 * the embedding, not the whole checkpoint. When nearly everything is wanted (≥ 90% of the data)
 * or the source cannot read ranges, the whole file is read in one go.
 *
 * @example
 * ```ts
 * import { readSafetensors } from "./safetensors_source.ts";
 * import { HttpSource } from "./source.ts";
 * const src = new HttpSource("https://example.com/smollm/");
 * const file = await readSafetensors(src, "model.safetensors", (name) => name.includes("layers.0."));
 * for (const name of file.entries.keys()) console.log(name);
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";
import {
  parseSafetensors,
  parseSafetensorsLayout,
  type SafetensorsFile,
  safetensorsFile,
  safetensorsHeaderLength,
} from "./formats/safetensors.ts";
import type { FileSource } from "./source.ts";

/** Wanted tensors closer than this many bytes are fetched in one read (the gap is wasted). */
export const RANGE_GAP = 1 << 20;

/** What {@linkcode readSafetensors} read: the file and the bytes it fetched. */
export interface SafetensorsRead {
  /** The file, holding the wanted tensors (all of them when read whole). */
  file: SafetensorsFile;
  /** Bytes read from the source (header included). */
  bytesRead: number;
  /** Reads issued (1 when read whole). */
  reads: number;
}

/**
 * Reads the tensors `wanted` accepts from a safetensors file (all of them without `wanted`).
 * Throws `bad_model` for a corrupt or truncated file, naming it.
 *
 * @example
 * ```ts
 * import { readSafetensors } from "./safetensors_source.ts";
 * import type { FileSource } from "./source.ts";
 * declare const src: FileSource;
 * const { file, bytesRead } = await readSafetensors(src, "model.safetensors", (n) => n.startsWith("model.norm"));
 * ```
 */
export async function readSafetensors(
  source: FileSource,
  path: string,
  wanted?: (name: string) => boolean,
): Promise<SafetensorsRead> {
  const where = source.describe(path);
  const whole = async (): Promise<SafetensorsRead> => {
    const bytes = await source.read(path);
    return { file: parseSafetensors(bytes, where), bytesRead: bytes.byteLength, reads: 1 };
  };
  if (!wanted || !source.readRange) return await whole();
  const n = safetensorsHeaderLength(await source.readRange(path, 0, 8), where);
  const json = await source.readRange(path, 8, 8 + n);
  if (json.byteLength < n) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${where}: file is truncated (the header needs ${8 + n} bytes)`,
    );
  }
  const layout = parseSafetensorsLayout(json, where);
  const spans = [...layout.tensors].filter(([name]) => wanted(name))
    .map(([name, t]) => ({ name, begin: t.begin, end: t.end }))
    .sort((a, b) => a.begin - b.begin);
  const need = spans.reduce((sum, s) => sum + s.end - s.begin, 0);
  if (need >= 0.9 * layout.dataLength) return await whole();

  // Merge neighbours into reads [begin, end) of the data, each holding some spans.
  const reads: { begin: number; end: number; bytes?: Uint8Array }[] = [];
  for (const s of spans) {
    const last = reads.at(-1);
    if (last && s.begin - last.end < RANGE_GAP) last.end = Math.max(last.end, s.end);
    else reads.push({ begin: s.begin, end: s.end });
  }
  let bytesRead = 8 + n;
  for (const r of reads) {
    r.bytes = await source.readRange(path, layout.dataStart + r.begin, layout.dataStart + r.end);
    bytesRead += r.bytes.byteLength;
    if (r.bytes.byteLength < r.end - r.begin) {
      const cut = spans.find((s) => s.end > r.begin + r.bytes!.byteLength)!;
      throw new TandemError(
        "bad_model",
        `Cannot load ${where}: file is truncated (tensor ${cut.name} ends at byte ${
          layout.dataStart + cut.end
        })`,
      );
    }
  }
  const keep = new Set(spans.map((s) => s.name));
  const file = safetensorsFile(layout, (name, begin, end) => {
    if (!keep.has(name)) return undefined;
    const r = reads.find((r) => r.begin <= begin && end <= r.end)!;
    return r.bytes!.subarray(begin - r.begin, end - r.begin);
  }, where);
  return { file, bytesRead, reads: reads.length + 2 };
}
