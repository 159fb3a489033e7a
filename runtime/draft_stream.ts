/**
 * Draft streaming over a split session (wire 1.1): the device never waits for a verdict while
 * its drafts keep being accepted. It drafts continuously with its early-exit head and sends
 * each boundary row as soon as it is computed, as its own small request (several in flight:
 * any host's `fetch` can do this, browsers included), carrying its position and input token.
 * The edge runs the rows in sequence order and computes only those on its verified branch
 * (`edge/draft_stream.ts`); each answer carries the edge's token for the next position.
 *
 * One row at position p, input token t (the device's draft for p, or the edge's own token):
 *
 * 1. device: row = layers [0, K)(embed t) at p; send it; early-exit head(row) → draft for p+1;
 *    go on with p+1 while fewer than `maxInFlight` rows are unanswered.
 * 2. edge: if t is its token for p, run [K, L) + head → answer e = its token for p+1; else
 *    answer stale, computing nothing.
 * 3. device, per answer in order: emit e (the edge confirmed it: greedy output is exactly the
 *    whole model's). If the row in flight at p+1 carried another token, every row from p+1 on
 *    is dead (answered stale, discarded): resume at p+1 from e — rolling back is writing
 *    position p+1 again, as `forward` takes explicit positions.
 *
 * The edge computes one row per emitted token (a plain split's cloud FLOPs); the device pays
 * one round trip per mismatch, not per token. A lost edge session (`session_not_found`) is
 * rebuilt by replaying the confirmed rows, then the stream resumes; a request without an
 * answer is resent with its sequence number (the edge answers it once).
 *
 * @example
 * ```ts
 * import { generateStreamed } from "./draft_stream.ts";
 * import type { SplitSession } from "./session.ts";
 * import type { Engine } from "./engine.ts";
 * declare const session: SplitSession; declare const engine: Engine; // the session's engine
 * const run = generateStreamed(session, engine, [1], { maxTokens: 40 });
 * for await (const token of run) console.log(token);
 * console.log(run.metrics().tokensPerRoundTrip); // tokens per round trip waited for
 * ```
 *
 * @module
 */

import type { Engine } from "./engine.ts";
import { check, TandemError } from "./errors.ts";
import { checkExitAdapter, draftHeadFlops, draftLogits, type ExitAdapter } from "./exit_adapter.ts";
import { MetricsRecorder } from "./router/accounting.ts";
import { argmax } from "./sampling.ts";
import type { SplitSession } from "./session.ts";
import type { SpeculativeRun } from "./speculate_session.ts";
import type { Reply } from "./wire_reply.ts";

/** Options of {@linkcode generateStreamed}. */
export interface StreamedGenerateOptions {
  /** Most tokens to produce (default 256; clipped to the context). */
  maxTokens?: number;
  /** Stop at EOS/BOS (default true); the stop token is not yielded. */
  stopAtEos?: boolean;
  /** Most rows unanswered at once (default 16; at most what the edge holds per session). */
  maxInFlight?: number;
  /**
   * Awaited after each row is computed, before it is sent (default: one macrotask, so uploads
   * and answers progress between rows).
   */
  betweenRows?: () => Promise<void>;
  /** Most edge sessions rebuilt by replay during the run (default 3). */
  maxRecoveries?: number;
  /** Clock for the metrics (default `performance.now`). */
  now?: () => number;
  /**
   * Send the prompt as token ids (wire 1.2) when the edge takes them (`SplitSession.step`'s
   * `tokenPrefill`); the device still computes its own [0, K) cache for the decode.
   */
  tokenPrefill?: boolean;
  /** `false`: the prompt's rows go in one frame, not pipelined (`SplitSession.step`). */
  pipeline?: boolean;
  /** The early-exit head reads the session's rows through this (`exit_adapter.ts`). */
  exitAdapter?: ExitAdapter;
}

/** One row sent and not yet handled. */
interface InFlight {
  pos: number;
  token: number;
  reply: Promise<Reply>;
  settled: boolean;
  dead: boolean;
  /** Sent while no live row was in flight: its round trip is waited for in full. */
  serial: boolean;
}

/**
 * Resolves after one macrotask (a `MessageChannel` message: no timer clamping in browsers).
 *
 * @example
 * ```ts
 * import { nextTask } from "./draft_stream.ts";
 * await nextTask();
 * ```
 */
export function nextTask(): Promise<void> {
  if (typeof MessageChannel === "undefined") return new Promise((r) => setTimeout(r, 0));
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(0);
  });
}

/**
 * Generates from a fresh split session by draft streaming (see the module doc). `engine` must
 * be the session's device engine (embedding, layers [0, K) and the head). The edge must
 * advertise draft streaming (`SessionInfo.stream`), else this throws `unsupported`.
 *
 * Metrics: `roundTrips` counts every request; `tokensPerRoundTrip` counts decode tokens per
 * round trip the stream waited for in sequence (a row sent while live rows were in flight
 * overlaps them); `drafted`/`accepted` are rows sent with a drafted token and those the edge
 * computed; `edgeRows` the rows it computed.
 *
 * @example
 * ```ts
 * import { generateStreamed } from "./draft_stream.ts";
 * import type { SplitSession } from "./session.ts";
 * import type { Engine } from "./engine.ts";
 * declare const session: SplitSession; declare const engine: Engine;
 * const tokens = await Array.fromAsync(generateStreamed(session, engine, [1], { maxTokens: 8 }));
 * ```
 */
export function generateStreamed(
  session: SplitSession,
  engine: Engine,
  prompt: readonly number[],
  options: StreamedGenerateOptions = {},
): SpeculativeRun {
  const { maxTokens = 256, stopAtEos = true, maxRecoveries = 3 } = options;
  const c = session.config;
  check(prompt.length > 0, "bad_argument", "Cannot generate: empty prompt");
  check(session.length === 0, "bad_argument", "Cannot stream on a session that holds context");
  check(engine.parts.head, "bad_argument", "Cannot draft: the device engine holds no head");
  check(
    prompt.length < c.maxSeqLen,
    "bad_argument",
    () => `Cannot generate: the prompt has ${prompt.length} tokens, the context ${c.maxSeqLen}`,
  );
  const adapter = options.exitAdapter;
  if (adapter) checkExitAdapter(adapter, session.split, c.dim);
  const port = session.streamPort();
  const limits = port.stream();
  if (!limits) {
    throw new TandemError("unsupported", "Cannot stream drafts: the edge speaks wire < 1.1");
  }
  const window = Math.max(1, Math.min(options.maxInFlight ?? 16, limits.maxHeld));
  const between = options.betweenRows ?? nextTask;
  const rec = new MetricsRecorder(
    { route: "split", split: session.split, promptTokens: prompt.length },
    options.now,
  );
  const stops = new Set(stopAtEos ? [...c.eosIds, c.bosId] : []);
  const budget = Math.min(maxTokens, c.maxSeqLen - prompt.length + 1);
  let seen = { ...session.stats };
  /** Accounts the session's requests since the last call as one sample. */
  const account = (s: Partial<Parameters<MetricsRecorder["roundTrip"]>[0]>) => {
    const now = session.stats;
    rec.roundTrip({
      bytesUp: now.bytesSent - seen.bytesSent,
      bytesDown: now.bytesReceived - seen.bytesReceived,
      count: now.roundTrips - seen.roundTrips,
      ...s,
    });
    rec.flops(now.deviceFlops - seen.deviceFlops, now.edgeFlops - seen.edgeFlops);
    seen = { ...now };
  };

  async function* run(): AsyncGenerator<number, void, void> {
    const first = (await session.step(prompt, {
      tokenPrefill: options.tokenPrefill,
      pipeline: options.pipeline,
    }))[0].token;
    account({ rows: prompt.length, answered: 1 });
    let produced = 0;
    const emit = (t: number): boolean => {
      if (stops.has(t) || produced >= budget) return false;
      produced++;
      rec.tokens(1);
      return true;
    };
    if (!emit(first)) return;
    yield first;
    let confirmed = prompt.length; // positions both sides hold, verified
    let next = first; //              the edge's token for position `confirmed`
    let front = confirmed; //         the next position the device computes
    let frontToken = first; //        the token it feeds there (the edge's, or a draft)
    let recoveries = 0;
    let stopped = false;
    let failed = true;
    const flight: InFlight[] = [];
    const settleAll = async () => {
      await Promise.all(flight.map((f) => f.reply.catch(() => {})));
      flight.length = 0;
    };
    try {
      while (!stopped && produced < budget) {
        // 1. Handle the answers that are in, in order.
        while (flight.length > 0 && flight[0].settled) {
          const f = flight.shift()!;
          let reply: Reply;
          try {
            reply = await f.reply;
          } catch (e) {
            if (!(e instanceof TandemError && e.code === "session_not_found")) throw e;
            if (++recoveries > maxRecoveries) throw e;
            // The edge lost the session: replay the confirmed rows, then resume from there.
            await settleAll();
            const r = await port.resend(confirmed - 1);
            account({ rows: confirmed, answered: 0, overlapped: true });
            if (r.tokens[0]?.token !== next) {
              throw new TandemError(
                "conflict",
                `Cannot resume the draft stream: the rebuilt edge session answers token ${
                  r.tokens[0]?.token
                } at position ${confirmed}, the stream had ${next}`,
              );
            }
            front = confirmed;
            frontToken = next;
            break;
          }
          if (f.dead) {
            if (!reply.stale) throw desync(f, "computed a row the device had discarded");
            account({ rows: 0, drafted: 1, overlapped: true });
            continue;
          }
          if (reply.stale || reply.tokens.length !== 1) {
            throw desync(f, "answered stale for a row on its verified branch");
          }
          const t = reply.tokens[0].token;
          const drafted = f.serial ? 0 : 1;
          account({ rows: 1, drafted, accepted: drafted, answered: 1, overlapped: !f.serial });
          confirmed = f.pos + 1;
          next = t;
          port.held(confirmed);
          if (!emit(t)) {
            stopped = true;
            break;
          }
          yield t;
          if (produced >= budget) break;
          const nextRow = flight[0];
          if (!nextRow || nextRow.token !== t) {
            // Nothing drafted beyond, or the device's branch diverged here: every row in
            // flight is dead (the edge answers them stale); resume from the edge's token.
            for (const g of flight) g.dead = true;
            front = confirmed;
            frontToken = t;
          }
        }
        if (stopped || produced >= budget) break;
        // 2. Compute and send the next row, if the window and the budget allow.
        const live = flight.filter((f) => !f.dead).length;
        const wanted = front < confirmed + (budget - produced) && front < c.maxSeqLen &&
          !stops.has(frontToken);
        if (wanted && live < window) {
          const pos = front, token = frontToken;
          const row = port.run(token, pos);
          await between();
          const reply = port.post(pos, token);
          const f: InFlight = {
            pos,
            token,
            reply,
            settled: false,
            dead: false,
            serial: live === 0,
          };
          reply.then(() => (f.settled = true), () => (f.settled = true));
          flight.push(f);
          // The early-exit head's draft for pos + 1.
          frontToken = argmax(draftLogits(engine, row, session.split, adapter));
          rec.flops(draftHeadFlops(c, adapter), 0);
          front++;
          continue;
        }
        if (flight.length === 0) break; // nothing to wait for: the context is full
        // 3. Wait for the oldest answer (each request has its own timeout and retries).
        await flight[0].reply.catch(() => {});
      }
      failed = false;
    } finally {
      // Rows still in flight (past a stop token, or dead) finish before the session is reused;
      // after a failure they finish in the background, none rejecting unhandled.
      if (failed) { for (const f of flight) f.reply.catch(() => {}); }
      else await settleAll();
      account({ overlapped: true });
    }
  }

  const desync = (f: InFlight, what: string) =>
    new TandemError(
      "conflict",
      `Cannot continue the draft stream: the edge ${what} (position ${f.pos}, token ${f.token})`,
    );

  const it = run();
  return Object.assign(it, { metrics: () => rec.finish() }) as SpeculativeRun;
}
