/**
 * The all-edge route from the device: token ids up to the edge's `POST /v1/generate`, token
 * ids streamed back as NDJSON lines (`wire_reply.ts`), so the device never sends text. A token
 * that does not arrive within `idleTimeoutMs` of the previous one ends the stream with a
 * `network` error: the router's cue that the edge is slow (see `routed.ts`).
 *
 * @example
 * ```ts
 * import { cloudGenerate } from "./cloud_generate.ts";
 * const run = cloudGenerate({ edge: "http://127.0.0.1:8787", modelId: "stories260K" }, [1], 20);
 * for await (const token of run) console.log(token);
 * console.log(run.bytesUp(), run.bytesDown());
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";
import { encodeReplyLine, readReply, type ReplyToken } from "./wire_reply.ts";

/** Where and how to reach the edge. */
export interface CloudTarget {
  /** Edge base URL. */
  edge: string | URL;
  /** Model id the edge serves whole. */
  modelId: string;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Milliseconds without a token before the stream counts as lost (default 30000; 0 = none). */
  idleTimeoutMs?: number;
}

/** The token stream of one all-edge request, with its byte counts. */
export interface CloudRun extends AsyncIterableIterator<number> {
  /** Request body bytes. */
  bytesUp(): number;
  /** Answer bytes so far. */
  bytesDown(): number;
}

/**
 * Streams greedy tokens for `context` from the edge (at most `maxTokens`, stopping at EOS).
 *
 * @example
 * ```ts
 * import { cloudGenerate } from "./cloud_generate.ts";
 * const tokens = await Array.fromAsync(
 *   cloudGenerate({ edge: "http://127.0.0.1:8787", modelId: "m", idleTimeoutMs: 2000 }, [1, 5], 8),
 * );
 * ```
 */
export function cloudGenerate(
  target: CloudTarget,
  context: readonly number[],
  maxTokens: number,
): CloudRun {
  const f = target.fetch ?? globalThis.fetch.bind(globalThis);
  const body = JSON.stringify({ model: target.modelId, tokens: context, max_tokens: maxTokens });
  const up = new TextEncoder().encode(body).byteLength;
  let down = 0;
  const idle = target.idleTimeoutMs ?? 30_000;

  async function* run(): AsyncGenerator<number, void, void> {
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      if (idle) timer = setTimeout(() => ac.abort(new Error(`no token within ${idle} ms`)), idle);
    };
    const queue: number[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    arm();
    const reading = (async () => {
      const base = String(target.edge).replace(/\/+$/, "");
      const res = await f(`${base}/v1/generate`, {
        method: "POST",
        headers: { "content-type": "application/json", ...target.headers },
        body,
        signal: ac.signal,
      });
      if (!res.ok || !res.body) {
        const text = await res.text();
        // An error body is one NDJSON-compatible error line: readReply throws it typed.
        const line = text.includes('"error"') ? text : encodeReplyLine({
          error: { code: "network", message: `The edge answered ${res.status}` },
        });
        await readReply(new Response(line).body!, () => {});
      }
      const counted = res.body!.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            down += chunk.byteLength;
            ctl.enqueue(chunk);
          },
        }),
      );
      await readReply(counted, (t: ReplyToken) => {
        arm();
        queue.push(t.token);
        wake?.();
      });
    })().catch((e) => {
      failure = e instanceof TandemError ? e : new TandemError(
        "network",
        `Lost the edge's token stream: ${(e as Error)?.message ?? e}`,
      );
    }).finally(() => {
      finished = true;
      clearTimeout(timer);
      wake?.();
    });
    try {
      while (true) {
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        if (finished) break;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      if (failure) throw failure;
    } finally {
      ac.abort();
      clearTimeout(timer);
      await reading;
    }
  }

  return Object.assign(run(), { bytesUp: () => up, bytesDown: () => down }) as CloudRun;
}
