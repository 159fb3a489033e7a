/**
 * The cost model of draft streaming at split K (wire 1.1): the device drafts continuously
 * with its early-exit head and sends each row as its own request, up to W in flight; the edge
 * computes only rows on its verified branch. With a the early-exit head's agreement with the
 * model (m = 1 − a mismatches per token):
 *
 * | quantity            | prediction                                                          |
 * | ------------------- | ------------------------------------------------------------------- |
 * | time to first token | a plain split's (the prompt goes as before, as rows or token ids)   |
 * | one row's trip      | T = device(K layers + head) + up(row) + rtt + edge(L − K + head) + down |
 * | pipeline step       | s = max(device row, edge row, up(row), T / W)                       |
 * | first decode token  | T: the device drafts from the edge's first token                    |
 * | each later token    | (1 − m)·s + m·(T + d/2): a confirmed draft costs a step; a mismatch a whole trip, after the row in progress (d, the device row time) ends |
 * | edge FLOPs          | a plain split's: one row per token, nothing for stale rows          |
 * | rows sent per token | 1 + m·(min(W, T / s) − 1): the rows in flight when a mismatch is seen are dead |
 *
 * @example
 * ```ts
 * import { predictStreamed } from "./stream_model.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * const p = predictStreamed(input, 4, { acceptance: 0.5, maxInFlight: 16 });
 * console.log(p.tokensPerSec, p.cloudShare, p.rowsSentPerToken);
 * ```
 *
 * @module
 */

import { localPrefillMs, predictSplit } from "./cost_model.ts";
import type { Prediction, PrefillChoice, RouterInput, StreamProfile } from "./types.ts";

/**
 * Predicts draft streaming at split K (1..L-1) with the given profile.
 *
 * @example
 * ```ts
 * import { predictStreamed } from "./stream_model.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * console.log(predictStreamed(input, 3, { acceptance: 0.3, maxInFlight: 8 }).totalMs);
 * ```
 */
export function predictStreamed(
  input: RouterInput,
  split: number,
  profile: StreamProfile,
  prefill: PrefillChoice = "rows",
): Prediction {
  const plain = predictSplit(input, split, false, prefill);
  const { model: m, query, device, network: net, edge, wire } = input;
  const L = m.nLayers;
  const K = split;
  const n = Math.max(1, query.promptTokens);
  const N = Math.max(1, query.maxTokens);
  const ctx = n + N / 2;
  const layer = m.layerFlops(ctx);
  const deviceRow = 1000 * (K * layer + m.headFlops) / device.flopsPerSec;
  const edgeRow = 1000 * ((L - K) * layer + m.headFlops) / edge.flopsPerSec /
    Math.max(1e-3, 1 - edge.load);
  const rowBytes = wire.requestBytes + wire.bytesPerRow;
  const up = 1000 * rowBytes / net.upBytesPerSec;
  const down = 1000 * wire.replyBytesPerToken / net.downBytesPerSec;
  const W = Math.max(1, profile.maxInFlight);
  const miss = Math.min(1, Math.max(0, 1 - profile.acceptance));
  const trip = deviceRow + up + net.rttMs + edge.queueMs + edgeRow + down;
  const step = Math.max(deviceRow, edgeRow, up, trip / W);
  // A verdict that lands mid-row is read when the row ends: half a row on average.
  const perToken = (1 - miss) * step + miss * (trip + deviceRow / 2);
  const sent = 1 + miss * Math.max(0, Math.min(W, trip / step) - 1);
  const decoded = N - 1;
  // Token prefill: the first row waits for the device's own [0, K) prefill too.
  const from = prefill === "tokens"
    ? Math.max(plain.ttftMs, localPrefillMs(input, split))
    : plain.ttftMs;
  const totalMs = from + (decoded > 0 ? trip + (decoded - 1) * perToken : 0);
  return {
    ...plain,
    deviceFlops: plain.deviceFlops +
      decoded * (sent * (K * layer + m.headFlops) - K * layer),
    bytesUp: plain.bytesUp + decoded * (sent - 1) * rowBytes,
    roundTrips: 1 + Math.ceil(decoded * sent),
    totalMs,
    tokensPerSec: decoded > 0 ? 1000 * decoded / Math.max(1e-9, totalMs - plain.ttftMs) : Infinity,
    drafting: false,
    speculation: undefined,
    streamed: profile,
    rowsSentPerToken: sent,
  };
}
