/**
 * Agreement of split generation with all-cloud per wire choice (prompt rows in one dtype,
 * decode rows in another), both halves in process: free-running (the split generates on its
 * own; one early difference changes the rest) and teacher-forced (every position is predicted
 * from the all-cloud context: how often the wire alone changes the argmax).
 *
 * @module
 */

import type { Engine } from "../runtime/engine.ts";
import { argmax } from "../runtime/sampling.ts";
import { decodeFrame, encodeFrame, type WireDtype } from "../runtime/wire.ts";
import { agreement, type Job } from "./_router_workload.ts";

/** One wire choice's agreement with all-cloud. */
export interface WireAgreement {
  /** Prompt-row dtype. */
  prefill: WireDtype;
  /** Decode-row dtype. */
  decode: WireDtype;
  /** Free-running token agreement, 0..1. */
  free: number;
  /** Teacher-forced next-token agreement, 0..1. */
  forced: number;
}

/** Rows as the edge sees them after the wire. */
function wire(rows: Float32Array, dtype: WireDtype, dim: number): Float32Array {
  if (dtype === "f32") return rows;
  const frame = encodeFrame({
    dtype,
    split: 1,
    dim,
    pos: 0,
    seq: 0,
    modelId: "m",
    session: new Uint8Array(16),
    digest: new Uint8Array(32),
    rows,
  });
  return decodeFrame(frame).rows;
}

/** Measures one wire choice at split K over the workload. */
export function wireAgreement(
  e: Engine,
  jobs: Job[],
  K: number,
  prefill: WireDtype,
  decode: WireDtype,
  maxTokens: number,
): WireAgreement {
  const c = e.config;
  const L = c.nLayers;
  const stops = new Set([...c.eosIds, c.bosId]);
  let same = 0, of = 0, hit = 0, total = 0;
  for (const job of jobs) {
    // Free-running.
    const dev = e.createCache([0, K]);
    const edge = e.createCache([K, L]);
    let h = e.forward(dev, e.embed(job.prompt), 0, 0, K);
    let out = e.forward(edge, wire(h, prefill, c.dim), 0, K, L);
    let pos = job.prompt.length;
    const got: number[] = [];
    for (let i = 0; i < maxTokens && pos < c.maxSeqLen; i++) {
      const t = argmax(e.head(out.subarray(out.length - c.dim)));
      if (stops.has(t)) break;
      got.push(t);
      h = e.forward(dev, e.embed([t]), pos, 0, K);
      out = e.forward(edge, wire(h, decode, c.dim), pos++, K, L);
    }
    const a = agreement(got, job.reference);
    same += a.same;
    of += a.of;
    // Teacher-forced on the all-cloud context.
    const ctx = [...job.prompt, ...job.reference];
    const n = job.prompt.length;
    const dev2 = e.createCache([0, K]);
    const edge2 = e.createCache([K, L]);
    const hp = e.forward(dev2, e.embed(ctx.slice(0, n)), 0, 0, K);
    const hd = e.forward(dev2, e.embed(ctx.slice(n)), n, 0, K);
    const op = e.forward(edge2, wire(hp, prefill, c.dim), 0, K, L);
    const od = job.reference.length > 1
      ? e.forward(edge2, wire(hd, decode, c.dim), n, K, L)
      : new Float32Array(0);
    for (let i = 0; i < job.reference.length; i++) {
      const row = i === 0
        ? op.subarray(op.length - c.dim)
        : od.subarray((i - 1) * c.dim, i * c.dim);
      if (argmax(e.head(row)) === job.reference[i]) hit++;
      total++;
    }
  }
  return { prefill, decode, free: of ? same / of : 1, forced: total ? hit / total : 1 };
}
