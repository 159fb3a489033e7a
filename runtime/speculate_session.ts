/**
 * Self-speculative decoding over a real split session: the device drafts with its early-exit
 * head, one frame carries the drafts' boundary rows, the edge verifies them in one pass and
 * answers the accepted prefix plus its own token (see `speculate.ts` for the algorithm and
 * `edge/split_forward.ts` for the edge half). Greedy output equals plain split decoding.
 *
 * The run's cost and latency come back as a {@linkcode RequestMetrics}: FLOPs on each side,
 * bytes each way, round trips, drafts proposed and accepted, TTFT and tokens per second.
 *
 * @example
 * ```ts
 * import { generateSpeculative } from "./speculate_session.ts";
 * import type { SplitSession } from "./session.ts";
 * import type { Engine } from "./engine.ts";
 * declare const session: SplitSession; declare const engine: Engine; // same engine as the session's
 * const run = generateSpeculative(session, engine, [1], { maxTokens: 40 });
 * for await (const token of run) console.log(token);
 * console.log(run.metrics().tokensPerRoundTrip);
 * ```
 *
 * @module
 */

import type { Engine } from "./engine.ts";
import { check, TandemError } from "./errors.ts";
import type { ExitAdapter } from "./exit_adapter.ts";
import { MetricsRecorder, type RequestMetrics } from "./router/accounting.ts";
import { DefaultPolicy } from "./router/policy.ts";
import type { SessionStats, SplitSession } from "./session.ts";
import { Drafter, type StepPolicy } from "./speculate.ts";

/** Options of {@linkcode generateSpeculative}. */
export interface SpeculativeGenerateOptions {
  /** Most tokens to produce (default 256; clipped to the context). */
  maxTokens?: number;
  /** Stop at EOS/BOS (default true); the stop token is not yielded. */
  stopAtEos?: boolean;
  /** When to draft (default {@linkcode DefaultPolicy}); `"plain"`: never, one token a trip. */
  policy?: StepPolicy | "plain";
  /** Clock for the metrics (default `performance.now`). */
  now?: () => number;
  /** Send the prompt as token ids (wire 1.2) when the edge takes them (`SplitSession.step`). */
  tokenPrefill?: boolean;
  /** `false`: the prompt's rows go in one frame, not pipelined (`SplitSession.step`). */
  pipeline?: boolean;
  /** The early-exit head reads the session's rows through this (`exit_adapter.ts`). */
  exitAdapter?: ExitAdapter;
}

/** An async iterator of tokens whose metrics can be read at any time. */
export interface SpeculativeRun extends AsyncIterableIterator<number> {
  /** Cost and latency so far (complete once the iterator is done). */
  metrics(): RequestMetrics;
}

/**
 * Generates from a fresh split session with self-speculation. `engine` must be the session's
 * device engine (it holds the embedding, layers [0, K) and the head).
 *
 * @example
 * ```ts
 * import { generateSpeculative } from "./speculate_session.ts";
 * import type { SplitSession } from "./session.ts";
 * import type { Engine } from "./engine.ts";
 * declare const session: SplitSession; declare const engine: Engine;
 * const tokens = await Array.fromAsync(generateSpeculative(session, engine, [1], { maxTokens: 8 }));
 * ```
 */
export function generateSpeculative(
  session: SplitSession,
  engine: Engine,
  prompt: readonly number[],
  options: SpeculativeGenerateOptions = {},
): SpeculativeRun {
  const { maxTokens = 256, stopAtEos = true } = options;
  const c = session.config;
  check(prompt.length > 0, "bad_argument", "Cannot generate: empty prompt");
  check(session.length === 0, "bad_argument", "Cannot speculate on a session that holds context");
  if (prompt.length >= c.maxSeqLen) {
    throw new TandemError(
      "bad_argument",
      `Cannot generate: the prompt has ${prompt.length} tokens, the context ${c.maxSeqLen}`,
    );
  }
  const policy = options.policy === "plain" ? undefined : options.policy ?? new DefaultPolicy();
  const drafter = policy
    ? new Drafter(engine, policy, options.exitAdapter, session.split)
    : undefined;
  const rec = new MetricsRecorder(
    { route: "split", split: session.split, promptTokens: prompt.length },
    options.now,
  );
  const start: SessionStats = { ...session.stats };
  let headFlops = 0;
  const sync = () => {
    const s = session.stats;
    rec.flops(
      s.deviceFlops - start.deviceFlops + (drafter?.headFlops ?? 0) - headFlops,
      s.edgeFlops - start.edgeFlops,
    );
    headFlops = drafter?.headFlops ?? 0;
    Object.assign(start, s);
  };
  const stops = new Set(stopAtEos ? [...c.eosIds, c.bosId] : []);
  const budget = Math.min(maxTokens, c.maxSeqLen - prompt.length + 1);

  async function* run(): AsyncGenerator<number, void, void> {
    let produced = 0;
    let answer = await trip(prompt, undefined, {
      tokenPrefill: options.tokenPrefill,
      pipeline: options.pipeline,
    });
    while (true) {
      for (const t of answer) {
        if (stops.has(t) || produced >= budget) return;
        produced++;
        rec.tokens(1);
        yield t;
      }
      if (produced >= budget || session.length >= c.maxSeqLen) return;
      const room = budget - produced;
      const extend = drafter
        ? (row: Float32Array, n: number) => (n + 2 <= room ? drafter.propose(row, n) : undefined)
        : undefined;
      answer = await trip([answer[answer.length - 1]], extend);
    }
  }

  async function trip(
    tokens: readonly number[],
    extend?: (row: Float32Array, n: number) => number | undefined,
    prefill: { tokenPrefill?: boolean; pipeline?: boolean } = {},
  ): Promise<number[]> {
    const before = { ...session.stats };
    let n = 0;
    const counting = extend && ((row: Float32Array, d: number) => {
      const t = extend(row, d);
      if (t !== undefined) n++;
      return t;
    });
    const reply = await session.step(tokens, counting ? { extend: counting } : prefill);
    const s = session.stats;
    rec.roundTrip({
      bytesUp: s.bytesSent - before.bytesSent,
      bytesDown: s.bytesReceived - before.bytesReceived,
      rows: tokens.length + n,
      drafted: n,
      accepted: n > 0 ? reply.length - 1 : 0,
      answered: reply.length,
      count: s.roundTrips - before.roundTrips,
    });
    sync();
    return reply.map((r) => r.token);
  }

  const it = run();
  return Object.assign(it, {
    metrics: (): RequestMetrics => rec.finish(),
  }) as SpeculativeRun;
}
