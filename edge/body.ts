/**
 * Reading request bodies under a size limit: a declared `content-length` past the limit is
 * refused before reading, and a body without one is read only up to the limit.
 *
 * @example
 * ```ts
 * import { readJson } from "./body.ts";
 * const v = await readJson(new Request("http://x/", { method: "POST", body: "{\"a\":1}" }), 1024);
 * console.log(v); // { a: 1 }
 * ```
 *
 * @module
 */

import { TandemError } from "../runtime/errors.ts";

function tooLarge(limit: number, what: string): TandemError {
  return new TandemError(
    "too_large",
    `Cannot read request: the body is ${what}, the limit is ${limit} bytes`,
  );
}

/**
 * The body's bytes; throws `too_large` past `limit`.
 *
 * @example
 * ```ts
 * import { readBytes } from "./body.ts";
 * const b = await readBytes(new Request("http://x/", { method: "POST", body: "hi" }), 10);
 * console.log(b.length); // 2
 * ```
 */
export async function readBytes(request: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) throw tooLarge(limit, `${declared} bytes`);
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (true) {
    const { done, value } = await readChunk(reader);
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge(limit, `over ${limit} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/**
 * The next chunk of a request body; throws `bad_request` when the client went away (or broke
 * the connection) mid-body: its fault, not a bug.
 *
 * @example
 * ```ts
 * import { readChunk } from "./body.ts";
 * declare const request: Request;
 * const { done, value } = await readChunk(request.body!.getReader());
 * ```
 */
export async function readChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch {
    throw new TandemError("bad_request", "Cannot read request: the body ended early");
  }
}

/**
 * The body parsed as JSON; throws `bad_request` when it is not JSON, `too_large` past `limit`.
 *
 * @example
 * ```ts
 * import { readJson } from "./body.ts";
 * declare const request: Request;
 * const body = await readJson(request, 1 << 20);
 * ```
 */
export async function readJson(request: Request, limit: number): Promise<unknown> {
  const text = new TextDecoder().decode(await readBytes(request, limit));
  try {
    return JSON.parse(text);
  } catch {
    throw new TandemError(
      "bad_request",
      `Cannot read request: the body is not valid JSON (${text.length} chars)`,
    );
  }
}
