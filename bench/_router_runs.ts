/**
 * The router bench's strategies on one request: all-cloud through the edge's OpenAI route
 * (text in, SSE out: what a plain cloud client does), and any policy through the library's
 * `routedGenerate` (fixed splits and the router alike).
 *
 * @module
 */

import type { Engine } from "../runtime/engine.ts";
import type { ModelConfig } from "../runtime/model.ts";
import { openRoutedSession, routedGenerate, type RoutedOptions } from "../runtime/routed.ts";
import type { Decision } from "../runtime/router/types.ts";
import type { Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
import { generationFlops } from "../runtime/cost.ts";
import type { Job } from "./_router_workload.ts";

/** One request's outcome. */
export interface Outcome {
  kind: string;
  /** The prompt text (identifies the job across strategies). */
  text: string;
  reference: number[];
  route: string;
  split: number;
  tokens: number[];
  ttftMs: number;
  totalMs: number;
  edgeFlops: number;
  wholeFlops: number;
  /** Requests to the edge. */
  frames: number;
  /** Decode round trips waited for. */
  decodeTrips: number;
  decision?: Omit<Decision, "predicted" | "baseline">;
  /** Routes the run moved to after its first decision (re-routing or a failure), e.g. "cloud". */
  later?: string[];
  /** Those later decisions: when and why. */
  laterDecisions?: { atToken: number; route: string; trigger?: string; reason: string }[];
  /** What the policy predicted for the route it took and for all-cloud (routed runs). */
  predicted?: { ttftMs: number; tokensPerSec: number; cloudTtftMs: number };
}

/** All-cloud: the OpenAI chat route, streamed. */
export async function runCloud(
  job: Job,
  url: string,
  max: number,
  id: string,
  tok: Tokenizer,
  c: ModelConfig,
): Promise<Outcome> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: id,
      messages: [{ role: "user", content: job.text }],
      max_tokens: max,
      temperature: 0,
      stream: true,
    }),
  });
  let ttft = 0, text = "", buf = "";
  const dec = new TextDecoder();
  for await (const chunk of res.body!) {
    buf += dec.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line.startsWith("data: {")) continue;
      const piece = JSON.parse(line.slice(6)).choices?.[0]?.delta?.content ?? "";
      if (piece && !ttft) ttft = performance.now() - t0;
      text += piece;
    }
  }
  const total = performance.now() - t0;
  // The edge runs the same greedy generate() as the reference: its text must match.
  const tokens =
    text === tok.decode([job.prompt[0], ...job.reference]) || text === tok.decode(job.reference)
      ? job.reference
      : [];
  const w = generationFlops(c, job.prompt.length, job.reference.length);
  return {
    kind: job.kind,
    text: job.text,
    reference: job.reference,
    route: "cloud",
    split: 0,
    tokens,
    ttftMs: ttft,
    totalMs: total,
    edgeFlops: w,
    wholeFlops: w,
    frames: 1,
    decodeTrips: 0,
  };
}

/**
 * A policy's run through `routedGenerate`; a split session at `prepareSplit` is opened ahead of
 * the query (as an app would when the user starts typing).
 */
export async function runRouted(
  job: Job,
  engine: Engine,
  opts: RoutedOptions,
  prepareSplit: number | undefined,
  c: ModelConfig,
): Promise<Outcome> {
  const prepared = prepareSplit ? await openRoutedSession(engine, prepareSplit, opts) : undefined;
  const run = routedGenerate(engine, job.prompt, { ...opts, prepared });
  const tokens = await Array.fromAsync(run);
  const m = run.metrics();
  const [d, ...rest] = run.decisions();
  const { predicted, baseline, ...decision } = d;
  return {
    kind: job.kind,
    text: job.text,
    reference: job.reference,
    route: d.route,
    split: d.split,
    tokens,
    ttftMs: m.ttftMs,
    totalMs: m.totalMs,
    edgeFlops: m.edgeFlops,
    wholeFlops: generationFlops(c, job.prompt.length, job.reference.length),
    frames: m.roundTrips,
    // Round trips waited for: with draft streaming, rows sent while others are in flight
    // overlap them (see `RequestMetrics.tokensPerRoundTrip`).
    decodeTrips: d.route !== "split"
      ? 0
      : m.tokensPerRoundTrip > 0
      ? Math.max(0, tokens.length - 1) / m.tokensPerRoundTrip
      : m.roundTrips - 1,
    decision,
    later: rest.map((x) => (x.route === "split" ? `K${x.split}` : x.route)),
    laterDecisions: rest.map((x) => ({
      atToken: x.atToken,
      route: x.route,
      trigger: x.trigger,
      reason: x.reason,
    })),
    predicted: {
      ttftMs: predicted.ttftMs,
      tokensPerSec: predicted.tokensPerSec,
      cloudTtftMs: baseline.ttftMs,
    },
  };
}
