/**
 * The router bench's section of bench/README.md: setup, calibration and the figures.
 *
 * @module
 */

import { markdownTable, updateReadme } from "./_readme.ts";
import type { CalibrationRow } from "./_router_workload.ts";
import { PROFILES } from "./_netsim.ts";
import { fmt } from "./_results.ts";
import type { Summary } from "./router.ts";

/** What the section shows. */
export interface RouterReport {
  /** Per strategy and profile. */
  rows: Summary[];
  /** Router vs all-cloud per profile. */
  targets: {
    profile: string;
    saved: number;
    agreement: number;
    ttftRatio: number;
    totalRatio: number;
  }[];
  /** The calibration sweep. */
  calib: CalibrationRow[];
  /** The thresholds chosen. */
  thresholds: { draftTop1: number; localTop1: number };
  /** Tokens per request. */
  maxTokens: number;
  /** Requests per strategy and profile. */
  jobs: number;
  /** Measured engine throughput. */
  flopsPerSec: number;
}

/** Rewrites the `router` section of bench/README.md. */
export async function routerReadme(r: RouterReport): Promise<void> {
  const off = (x: number) => (x > 1 ? "off" : String(x));
  const profiles = Object.values(PROFILES).map((p) =>
    `${p.name}: RTT ${p.rttMs} ms ± ${p.jitterMs / 2}, up ${
      fmt(p.upBytesPerSec * 8 / 1e6)
    } Mbit/s, down ${fmt(p.downBytesPerSec * 8 / 1e6)} Mbit/s`
  );
  const body = `## router

\`deno task bench router [--quick]\` — stories260K, ${r.jobs} requests per strategy and profile
(story openings short/medium/hard and synthetic long prompts), ${r.maxTokens} tokens each, greedy.
Real HTTP to a real edge (\`edge/app.ts\`, reference engine, ${fmt(r.flopsPerSec / 1e9)} GFLOP/s)
on loopback through a proxy that delays and throttles it (${profiles.join("; ")}). The device is
this process (same engine) holding the embedding, layers [0, 4) and the head; split sessions are
opened before the query (as an app would when the user starts typing), f32 on the wire.
"cloud FLOPs" is edge FLOPs over what the edge runs for the same request all-cloud;
"agreement" compares tokens position by position with the all-cloud answer.

${
    markdownTable([
      [
        "profile",
        "strategy",
        "cloud FLOPs",
        "TTFT p50/p95 ms",
        "total p50/p95 ms",
        "KB up/down",
        "trips/token",
        "tokens/trip",
        "agreement",
        "routes",
      ],
      ...r.rows.map((s) => [
        s.profile,
        s.strategy,
        `${s.cloudPct.toFixed(1)}%`,
        `${fmt(s.ttftP50)} / ${fmt(s.ttftP95)}`,
        `${fmt(s.totalP50)} / ${fmt(s.totalP95)}`,
        `${fmt(s.kbUp)} / ${fmt(s.kbDown)}`,
        fmt(s.tripsPerToken),
        s.tokensPerTrip ? fmt(s.tokensPerTrip) : "",
        `${s.agreementPct.toFixed(2)}%`,
        s.routes,
      ]),
    ])
  }

Targets (router vs all-cloud): ${
    r.targets.map((t) =>
      `${t.profile}: ${t.saved.toFixed(1)}% cloud FLOPs saved, agreement ${
        t.agreement.toFixed(2)
      }%, TTFT p50 ×${t.ttftRatio.toFixed(2)}, total p50 ×${t.totalRatio.toFixed(2)}`
    ).join("; ")
  }.

### Calibration of the default policy

Run in process on the same workload (no network), drafting from the early-exit head after
layer 4 unless noted. \`draftTop1\`: the lowest threshold whose extra cloud FLOPs (rejected
drafts are verified for nothing) stay within the policy's 5-point savings tolerance of plain
split decoding. \`localTop1\`: the lowest threshold for emitting an early-exit token unverified
that keeps ≥ 99% agreement with all-cloud — "off" when none does (stories260K was not trained
for early exit: its layer-4 head agrees with the full model on about half the tokens, and is
wrong on ~1 in 5 even at top-1 ≥ 0.9). Chosen: draftTop1 ${off(r.thresholds.draftTop1)},
localTop1 ${off(r.thresholds.localTop1)} (the values in \`DEFAULT_THRESHOLDS\`).

${
    markdownTable([
      ["K", "draftTop1", "localTop1", "tokens/trip", "edge rows/token", "cloud FLOPs", "agreement"],
      ...r.calib.map((c) => [
        c.split,
        off(c.draftTop1),
        off(c.localTop1),
        fmt(c.tokensPerRoundTrip),
        fmt(c.rowsPerToken),
        `${(100 * c.cloudShare).toFixed(1)}%`,
        `${(100 * c.agreement).toFixed(2)}%`,
      ]),
    ])
  }

Plot: \`bench/results/router.svg\` (savings vs p50 latency per profile; hollow points are the
cost model's prediction for each split K).
`;
  await updateReadme("router", body);
}
