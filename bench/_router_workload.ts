/**
 * The router bench's workload and its offline calibration (both halves in process, no
 * network): story openings of varying length and difficulty, synthetic long prompts, and the
 * sweeps that choose the default policy's confidence thresholds.
 *
 * @module
 */

import { generationFlops } from "../runtime/cost.ts";
import type { Engine } from "../runtime/engine.ts";
import { draftLogits, type ExitAdapter } from "../runtime/exit_adapter.ts";
import { generate } from "../runtime/generate.ts";
import { DefaultPolicy } from "../runtime/router/policy.ts";
import { speculativeSplit } from "../runtime/speculate.ts";
import { argmax } from "../runtime/sampling.ts";
import type { Tokenizer } from "../runtime/tokenizer/tokenizer.ts";

/** One request of the workload. */
export interface Job {
  /** Kind, for tables: short / medium / hard / long. */
  kind: string;
  /** Prompt text (sent as text on the all-cloud path). */
  text: string;
  /** Prompt tokens (BOS first). */
  prompt: number[];
  /** The all-cloud answer (greedy, whole model). */
  reference: number[];
}

const OPENINGS: [string, string][] = [
  ["short", "Once upon a time"],
  ["short", "Tom had a red ball"],
  ["short", "One day, a big dog"],
  ["medium", "Lily and her mom went to the store. They wanted to buy"],
  ["medium", "The sun was hot and the children were playing in the park. Ben saw"],
  ["hard", "The old lighthouse keeper counted seven purple boats before"],
  ["hard", "Grandpa's clock stopped at midnight, and the robot whispered"],
  ["medium", "Sara found a little bird under a tree. It was sad because"],
];

/** Builds the workload: openings, then synthetic long prompts (~`longTokens` tokens). */
export function workload(
  engine: Engine,
  tok: Tokenizer,
  o: { openings: number; long: number; longTokens: number; maxTokens: number },
): Job[] {
  const texts = OPENINGS.slice(0, o.openings);
  // Long prompts: the model's own stories from several openings, joined, then a new opening.
  const story = OPENINGS.map(([, t]) =>
    t + tok.decode([...generate(engine, tok.encode(t), { maxTokens: 60 })])
  )
    .join(" ");
  for (let i = 0; i < o.long; i++) {
    const ids = tok.encode(story.slice(i * 97), { bos: false }).slice(0, o.longTokens);
    texts.push(["long", tok.decode(ids) + " " + OPENINGS[i % OPENINGS.length][1]]);
  }
  return texts.map(([kind, text]) => {
    const prompt = tok.encode(text);
    return {
      kind,
      text,
      prompt,
      reference: [...generate(engine, prompt, { maxTokens: o.maxTokens })],
    };
  });
}

/** Position-wise agreement of `a` with the reference `r` over the longer length. */
export function agreement(
  a: readonly number[],
  r: readonly number[],
): { same: number; of: number } {
  let same = 0;
  for (let i = 0; i < Math.min(a.length, r.length); i++) if (a[i] === r[i]) same++;
  return { same, of: Math.max(a.length, r.length) };
}

/** One calibration point. */
export interface CalibrationRow {
  /** Split. */
  split: number;
  /** Early-exit draft threshold. */
  draftTop1: number;
  /** Early-exit local threshold. */
  localTop1: number;
  /** Most drafts per round trip. */
  maxDraft: number;
  /** Tokens per round trip. */
  tokensPerRoundTrip: number;
  /** Edge rows per token. */
  rowsPerToken: number;
  /** Edge FLOPs / all-cloud FLOPs. */
  cloudShare: number;
  /** Token agreement with all-cloud. */
  agreement: number;
}

/** Runs the workload in process with one step policy setting; aggregates. */
export function calibrate(
  engine: Engine,
  jobs: Job[],
  split: number,
  draftTop1: number,
  localTop1: number,
  maxTokens: number,
  maxDraft = 6,
  exitAdapter?: ExitAdapter,
): CalibrationRow {
  let tokens = 0, trips = 0, rows = 0, edge = 0, whole = 0, same = 0, of = 0;
  const policy = new DefaultPolicy({ draftTop1, localTop1, maxDraft });
  for (const job of jobs) {
    const gen = speculativeSplit(engine, engine, job.prompt, {
      split,
      maxTokens,
      policy,
      exitAdapter,
    });
    const out: number[] = [];
    let r = gen.next();
    for (; !r.done; r = gen.next()) out.push(r.value);
    const s = r.value;
    tokens += out.length;
    trips += s.roundTrips - 1; // decode trips only: the prefill answers one token
    rows += s.edgeRows - job.prompt.length;
    edge += s.edgeFlops;
    whole += generationFlops(engine.config, job.prompt.length, job.reference.length);
    const a = agreement(out, job.reference);
    same += a.same;
    of += a.of;
  }
  const decoded = tokens - jobs.length;
  return {
    split,
    draftTop1,
    localTop1,
    maxDraft,
    tokensPerRoundTrip: trips > 0 ? decoded / trips : 1,
    rowsPerToken: decoded > 0 ? rows / decoded : 1,
    cloudShare: edge / whole,
    agreement: of > 0 ? same / of : 1,
  };
}

/**
 * How often the early-exit head after layer K agrees with the whole model on the workload's
 * decode positions, teacher-forced on the all-cloud answer: the acceptance of draft streaming
 * (each disagreement costs it a round trip).
 */
export function earlyExitAgreement(
  engine: Engine,
  jobs: Job[],
  split: number,
  exitAdapter?: ExitAdapter,
): number {
  const { dim } = engine.config;
  let hit = 0, of = 0;
  for (const job of jobs) {
    const ctx = [...job.prompt, ...job.reference];
    const h = engine.forward(engine.createCache([0, split]), engine.embed(ctx), 0, 0, split);
    // The row at position p drafts the token at p + 1; decode drafts start after the first token.
    for (let p = job.prompt.length; p + 1 < ctx.length; p++) {
      of++;
      const row = h.subarray(p * dim, (p + 1) * dim);
      if (argmax(draftLogits(engine, row, split, exitAdapter)) === ctx[p + 1]) hit++;
    }
  }
  return of > 0 ? hit / of : 0;
}
