/**
 * Writes safetensors files (the layout is documented in `safetensors.ts`): the data is kept
 * 8-byte aligned by padding the JSON header with spaces.
 *
 * @example
 * ```ts
 * import { serializeSafetensors } from "./safetensors_write.ts";
 * const bytes = serializeSafetensors(new Map([["w", { shape: [2], data: new Float32Array([1, 2]) }]]));
 * console.log(bytes.byteLength);
 * ```
 *
 * @module
 */

import { f32ToBf16, f32ToF16 } from "../dtype.ts";
import { TandemError } from "../errors.ts";
import type { Tensor } from "../model.ts";

/** The dtypes tandem writes. */
export type SafetensorsDtype = "F32" | "F16" | "BF16";

/**
 * Writes f32 tensors as a safetensors file, stored as `dtype` (default F32), in map order.
 *
 * @example
 * ```ts
 * import { serializeSafetensors } from "./safetensors_write.ts";
 * const t = new Map([["norm", { shape: [4], data: new Float32Array(4).fill(1) }]]);
 * const bytes = serializeSafetensors(t, { dtype: "BF16", metadata: { format: "pt" } });
 * console.log(bytes.byteLength);
 * ```
 */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, Tensor>,
  options: { dtype?: SafetensorsDtype; metadata?: Record<string, string> } = {},
): Uint8Array {
  const dtype = options.dtype ?? "F32";
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  const payloads: Uint8Array[] = [];
  let at = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new TandemError(
        "bad_argument",
        `Cannot write tensor ${name}: shape [${t.shape}] needs ${count} values, it holds ${t.data.length}`,
      );
    }
    const raw = dtype === "F32" ? t.data : dtype === "F16" ? f32ToF16(t.data) : f32ToBf16(t.data);
    const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [at, at + bytes.byteLength] };
    payloads.push(bytes);
    at += bytes.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8; // keep the data 8-byte aligned
  if (padded !== json.byteLength) {
    json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(padded - json.byteLength));
  }
  const out = new Uint8Array(8 + json.byteLength + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let off = 8 + json.byteLength;
  for (const p of payloads) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
