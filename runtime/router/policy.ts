/**
 * Routing policies. {@linkcode DefaultPolicy} picks the cheapest route (fewest edge FLOPs ×
 * price) among those that are not noticeably slower than all-cloud; {@linkcode FixedPolicy}
 * always answers the same route (the bench's baselines).
 *
 * Default thresholds ({@linkcode DEFAULT_THRESHOLDS}) — see bench/README.md, "router", for the
 * calibration run that chose the confidence thresholds:
 *
 * | threshold        | default | meaning                                                        |
 * | ---------------- | ------- | -------------------------------------------------------------- |
 * | `ttftRatio`      | 1.0     | time to first token at most this × all-cloud's …               |
 * | `ttftSlackMs`    | 15      | … plus this (below one frame at 60 Hz: not noticeable)          |
 * | `minTokensPerSec`| 12      | streaming at least this fast: the reading-speed floor (the router bench calibrates it: skimming speed, 700 words/min, × the tokenizer's measured tokens per word) |
 * | `tokensPerSecRatio` | 0.25 | … and at least this share of all-cloud's streaming rate …      |
 * | `maxUsefulTokensPerSec` | 60 | … counted up to this rate (one token per 60 Hz frame: a faster cloud is not a faster screen) |
 *
 * "No noticeable slow-down" is thus: TTFT ≤ `ttftRatio` × all-cloud's + `ttftSlackMs`, and
 * tokens/s ≥ max(`minTokensPerSec`, `tokensPerSecRatio` × min(all-cloud's, `maxUsefulTokensPerSec`)).
 * | `draftTop1`      | 0.5     | keep drafting while the early-exit top-1 probability ≥ this     |
 * | `maxDraft`       | 6       | most drafts per round trip                                     |
 * | `savingsTolerance` | 0.05  | routes within 5 points of cloud share of the cheapest count as equally cheap: the fastest wins |
 * | `localTop1`      | 1.01    | emit an early-exit token unverified when top-1 ≥ this (off: on stories260K even 0.99 gives 92% agreement) |
 * | `rowPrefillMarginMs` | 10  | a split sends its prompt as rows only when their predicted TTFT is this far inside the limit; else as token ids where the edge takes them (token prefill shares all-cloud's path, so its TTFT is as certain as the baseline's; row prefill's is predicted less well, see bench/README.md, "router") |
 *
 * @example
 * ```ts
 * import { DefaultPolicy } from "./policy.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * const d = new DefaultPolicy().decide(input);
 * console.log(d.route, d.split, d.reason);
 * ```
 *
 * @module
 */

import { maxDeviceLayers, predictAll, predictSplit } from "./cost_model.ts";
import { predictStreamed } from "./stream_model.ts";
import type {
  Confidence,
  Decision,
  Policy,
  Prediction,
  PrefillChoice,
  Route,
  RouterInput,
  StepAction,
  StreamProfile,
} from "./types.ts";

/** Thresholds of {@linkcode DefaultPolicy}. */
export interface Thresholds {
  /** TTFT may be at most this multiple of all-cloud's … */
  ttftRatio: number;
  /** … plus this many ms. */
  ttftSlackMs: number;
  /** Decoding must reach this many tokens per second (the reading-speed floor) … */
  minTokensPerSec: number;
  /** … and this share of all-cloud's tokens per second … */
  tokensPerSecRatio: number;
  /** … counting all-cloud's rate up to this many tokens per second. */
  maxUsefulTokensPerSec: number;
  /** Keep drafting while the early-exit top-1 probability is at least this. */
  draftTop1: number;
  /** Most drafts per round trip. */
  maxDraft: number;
  /** Routes whose cloud share is within this of the cheapest count as equally cheap. */
  savingsTolerance: number;
  /** Emit an early-exit token without the edge when its top-1 probability is at least this. */
  localTop1: number;
  /**
   * Row prefill must be predicted at least this many ms inside the TTFT limit, else the prompt
   * goes as token ids where the edge takes them (and they meet the limits).
   */
  rowPrefillMarginMs: number;
}

/** The calibrated defaults (see the module doc and bench/README.md). */
export const DEFAULT_THRESHOLDS: Thresholds = {
  ttftRatio: 1.0,
  ttftSlackMs: 15,
  minTokensPerSec: 12,
  tokensPerSecRatio: 0.25,
  maxUsefulTokensPerSec: 60,
  draftTop1: 0.5,
  maxDraft: 6,
  savingsTolerance: 0.05,
  localTop1: 1.01,
  rowPrefillMarginMs: 10,
};

const pct = (x: number) => `${Math.round(100 * x)}%`;
const ms = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;

const name = (p: Prediction) =>
  `K=${p.split}${p.drafting ? `+drafts(≤${p.speculation?.maxDraft ?? "?"})` : ""}${
    p.streamed ? "+stream" : ""
  }${p.prefill === "tokens" ? "+token-prefill" : p.prefill === "whole" ? "+whole-prompt" : ""}`;

function routeOf(split: number, L: number): Route {
  return split <= 0 ? "cloud" : split >= L ? "local" : "split";
}

function describe(p: Prediction, base: Prediction, L: number): string {
  const where = p.split <= 0 ? "cloud" : p.split >= L ? "local" : `split at ${p.split}`;
  const rate = Number.isFinite(p.tokensPerSec) ? `${p.tokensPerSec.toFixed(0)} tok/s` : "1 token";
  return `${where}: ${pct(1 - p.cloudShare)} less cloud compute, TTFT ${ms(p.ttftMs)} vs ${
    ms(base.ttftMs)
  } all-cloud, ${rate}`;
}

/**
 * The decision when the edge is unavailable: the deepest the device can go, answered by its
 * early-exit head when it does not hold the whole model.
 *
 * @example
 * ```ts
 * import { localFallback } from "./policy.ts";
 * import type { RouterInput } from "./types.ts";
 * declare const input: RouterInput;
 * console.log(localFallback(input).reason);
 * ```
 */
export function localFallback(input: RouterInput): Decision {
  const L = input.model.nLayers;
  const all = predictAll(input);
  const deepest = maxDeviceLayers(input);
  const p = all[Math.max(1, deepest)];
  return {
    route: "local",
    split: L,
    maxDraft: 0,
    reason: `local: the edge is unavailable; ${
      deepest < L
        ? `early exit after layer ${deepest} (degraded: may differ from the whole model)`
        : "whole model"
    }`,
    policy: "fallback",
    predicted: { ...p, split: L, edgeFlops: 0, cloudShare: 0, cost: 0 },
    baseline: all[0],
  };
}

/** Cheapest route not noticeably slower than all-cloud. */
export class DefaultPolicy implements Policy {
  /** Policy name. */
  readonly name: string = "default";
  /** Thresholds in force. */
  readonly thresholds: Thresholds;

  /** Uses the defaults, overridden by `thresholds`. */
  constructor(thresholds: Partial<Thresholds> = {}) {
    this.thresholds = { ...DEFAULT_THRESHOLDS, ...thresholds };
  }

  /** Per query: the cheapest feasible route within the latency limits. */
  decide(input: RouterInput): Decision {
    const t = this.thresholds;
    const L = input.model.nLayers;
    const all = predictAll(input);
    const base = all[0];
    const deepest = maxDeviceLayers(input);
    const ttftLimit = base.ttftMs * t.ttftRatio + t.ttftSlackMs;
    const rateLimit = Math.max(
      t.minTokensPerSec,
      t.tokensPerSecRatio * Math.min(base.tokensPerSec, t.maxUsefulTokensPerSec),
    );
    const rejected: string[] = [];
    const ok: Prediction[] = [];
    type Make = (prefill: PrefillChoice) => Prediction;
    // Each split candidate sends its prompt as rows (the fewest cloud FLOPs), or — only when
    // that would miss the TTFT limit, or come within the margin of it, and the edge may take
    // them — as token ids (in the margin, only if those meet both limits).
    const prefillRowsTtft = new Map<Prediction, number>();
    const pipelinedTtft = new Map<Prediction, number>();
    const rowsLimit = ttftLimit - t.rowPrefillMarginMs;
    // (A one-token prompt is one row either way: nothing to prefill from ids.)
    const idsOffered = input.tokenPrefill && input.query.promptTokens > 1;
    const candidates = all.slice(1, deepest + 1).flatMap((p) => {
      const K = p.split;
      const makers: Make[] = [
        ...(p.drafting ? [(f: PrefillChoice) => predictSplit(input, K, true, f)] : []),
        (f) => predictSplit(input, K, false, f),
        ...(input.draftVariants?.[K] ?? []).map((v): Make => (f) => predictSplit(input, K, v, f)),
        ...(input.streaming?.[K] && K < L
          ? [(f: PrefillChoice) => predictStreamed(input, K, input.streaming![K]!, f)]
          : []),
      ];
      return makers.map((make) => {
        let rows = make("rows");
        if (rows.ttftMs > rowsLimit) {
          // Pipelined rows too late (say, a host whose streamed uploads stall, learned by the
          // TTFT corrector): the same rows in one frame may not be.
          const whole = make("whole");
          if (whole.prefill === "whole" && whole.ttftMs < rows.ttftMs) {
            pipelinedTtft.set(whole, rows.ttftMs);
            rows = whole;
          }
        }
        if (!idsOffered || K >= L || rows.ttftMs <= rowsLimit) return rows;
        const tokens = make("tokens");
        const fits = tokens.ttftMs <= ttftLimit && tokens.tokensPerSec >= rateLimit;
        if (rows.ttftMs <= ttftLimit && !fits) return rows;
        prefillRowsTtft.set(tokens, rows.ttftMs);
        return tokens;
      });
    });
    for (const p of candidates) {
      if (!input.edge.available && p.split < L) continue;
      if (p.ttftMs > ttftLimit) {
        rejected.push(`${name(p)} TTFT ${ms(p.ttftMs)} > ${ms(ttftLimit)}`);
      } else if (p.tokensPerSec < rateLimit) {
        rejected.push(`${name(p)} ${p.tokensPerSec.toFixed(1)} tok/s < ${rateLimit.toFixed(1)}`);
      } else ok.push(p);
    }
    if (ok.length > 0) {
      // Cheapest, then the fastest among those about as cheap.
      const cheapest = Math.min(...ok.map((p) => p.cloudShare));
      const near = ok.filter((p) => p.cloudShare <= cheapest + t.savingsTolerance + 1e-12);
      near.sort((a, b) => a.totalMs - b.totalMs || a.cost - b.cost || b.split - a.split);
      const p = near[0];
      const maxDraft = p.drafting ? p.speculation?.maxDraft ?? t.maxDraft : 0;
      const top1 = p.speculation?.draftTop1 ?? t.draftTop1;
      const draft = p.drafting
        ? `, drafting up to ${maxDraft} while top-1 ≥ ${top1} (${
          p.speculation!.tokensPerRoundTrip.toFixed(1)
        } tokens/trip)`
        : p.streamed
        ? `, streaming drafts (≤ ${p.streamed.maxInFlight} rows in flight, early-exit agreement ${
          pct(p.streamed.acceptance)
        }, ${p.rowsSentPerToken!.toFixed(1)} rows sent/token)`
        : "";
      const prefill = p.prefill === "tokens"
        ? `; prompt as token ids (rows: TTFT ${ms(prefillRowsTtft.get(p)!)} > ${
          ms(rowsLimit)
        }, the limit less the ${ms(t.rowPrefillMarginMs)} margin)`
        : "";
      const whole = p.prefill === "whole"
        ? `; prompt rows in one frame (pipelined: TTFT ${ms(pipelinedTtft.get(p)!)})`
        : "";
      let d = this.#decision(p, base, L, maxDraft, describe(p, base, L) + draft + prefill + whole);
      if (p.prefill) d = { ...d, prefill: p.prefill };
      if (p.streamed) return { ...d, streamed: { maxInFlight: p.streamed.maxInFlight } };
      return p.drafting ? { ...d, draftTop1: top1 } : d;
    }
    if (input.edge.available) {
      const why = deepest === 0
        ? "the device holds no layer"
        : `no split is fast enough (${rejected.slice(-2).join("; ")})`;
      return this.#decision(base, base, L, 0, `cloud: ${why}`);
    }
    return { ...localFallback(input), policy: this.name };
  }

  /** Per step: local when very confident, draft while confident, else send. */
  step(c: Confidence, drafted: number): StepAction {
    const t = this.thresholds;
    if (drafted === 0 && c.top1 >= t.localTop1) return "local";
    return drafted < t.maxDraft && c.top1 >= t.draftTop1 ? "draft" : "send";
  }

  /** Per step under a decision: its draft length and threshold (the variant it chose). */
  stepFor(d: Decision): Pick<Policy, "step"> {
    const t = this.thresholds;
    const top1 = d.draftTop1 ?? t.draftTop1;
    return {
      step: (c: Confidence, drafted: number): StepAction => {
        if (drafted === 0 && c.top1 >= t.localTop1) return "local";
        return drafted < d.maxDraft && c.top1 >= top1 ? "draft" : "send";
      },
    };
  }

  #decision(
    p: Prediction,
    base: Prediction,
    L: number,
    maxDraft: number,
    reason: string,
  ): Decision {
    return {
      route: routeOf(p.split, L),
      split: p.split,
      maxDraft,
      reason,
      policy: this.name,
      predicted: p,
      baseline: base,
    };
  }
}

/** Always the same route: all-cloud (split 0), a fixed split K, or all-local (split L). */
export class FixedPolicy implements Policy {
  /** Policy name, e.g. "fixed-3". */
  readonly name: string;
  /** The split always chosen. */
  readonly split: number;
  /** Drafts per round trip in split mode. */
  readonly maxDraft: number;
  /** Draft streaming in split mode (instead of `maxDraft`). */
  readonly stream?: StreamProfile;
  /** How a split sends its prompt (`tokens`: token prefill, wire 1.2). */
  readonly prefill: "rows" | "tokens";

  /**
   * A policy that always answers `split` (0 = cloud), drafting up to `maxDraft`, or streaming
   * drafts as `stream` says; a split sends its prompt as `prefill` says (default rows).
   */
  constructor(
    split: number,
    maxDraft = 0,
    stream?: StreamProfile,
    prefill: "rows" | "tokens" = "rows",
  ) {
    this.split = split;
    this.maxDraft = maxDraft;
    this.stream = stream;
    this.prefill = prefill;
    this.name = split === 0
      ? "cloud"
      : `fixed-${split}${stream ? "-stream" : ""}${prefill === "tokens" ? "-tokens" : ""}`;
  }

  /** The fixed route, with its prediction (local early exit when the edge is unavailable). */
  decide(input: RouterInput): Decision {
    const L = input.model.nLayers;
    if (!input.edge.available && this.split < L) {
      return { ...localFallback(input), policy: this.name };
    }
    const all = predictAll(input);
    let p = all[Math.min(L, Math.max(0, this.split))];
    const route = routeOf(p.split, L);
    const streamed = route === "split" && this.stream !== undefined;
    const tokens = route === "split" && this.prefill === "tokens";
    if (streamed) p = predictStreamed(input, p.split, this.stream!, this.prefill);
    else if (tokens) p = predictSplit(input, p.split, true, "tokens");
    return {
      route,
      split: p.split,
      maxDraft: route === "split" && !streamed ? this.maxDraft : 0,
      ...(streamed ? { streamed: { maxInFlight: this.stream!.maxInFlight } } : {}),
      ...(tokens ? { prefill: "tokens" as const } : {}),
      reason: `${this.name} (fixed): ${describe(p, all[0], L)}`,
      policy: this.name,
      predicted: p,
      baseline: all[0],
    };
  }

  /** Drafts while the default `draftTop1` holds and under `maxDraft`; never local. */
  step(c: Confidence, drafted: number): StepAction {
    return drafted < this.maxDraft && c.top1 >= DEFAULT_THRESHOLDS.draftTop1 ? "draft" : "send";
  }
}
