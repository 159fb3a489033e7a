/**
 * The router bench's section of bench/README.md: setup, calibration and the figures.
 *
 * @module
 */

import { markdownTable, updateReadme } from "./_readme.ts";
import type { Thresholds } from "../runtime/router/policy.ts";
import type { WireDtype } from "../runtime/wire.ts";
import { PROFILES } from "./_netsim.ts";
import type { PaceSpec } from "./_pace.ts";
import { fmt } from "./_results.ts";
import type { Summary, Target, TtftError } from "./_router_figures.ts";
import type { WireAgreement } from "./_router_wire.ts";
import type { CalibrationRow, Job } from "./_router_workload.ts";
import type { StreamProfile } from "../runtime/router/types.ts";
import type { ConnResult } from "./_conn_close.ts";

/** What the section shows. */
export interface RouterReport {
  rows: Summary[];
  targets: Target[];
  ttftErrors: TtftError[];
  calib: CalibrationRow[];
  wires: WireAgreement[];
  thresholds: Thresholds;
  prefillWire: WireDtype;
  tokensPerWord: number;
  pace: PaceSpec;
  maxTokens: number;
  jobs: Job[];
  flopsPerSec: number;
  edgeFlopsPerSec: number;
  streamProfile: StreamProfile;
  deviceLayers: number;
  /** The device's exit adapter: agreement on the workload and on its training text. */
  exitFit: {
    plainAcceptance: number;
    acceptance: number;
    trainPlain: number;
    trainAdapted: number;
    options: Record<string, number>;
  };
  /** The Deno keep-alive bug, measured, and the predicted cloud-class 4G streaming rate. */
  connClose?: { results: ConnResult[]; rates: { extraRtts: number; tokensPerSec: number }[] };
}

const off = (x: number) => (x > 1 ? "off" : String(x));
const yes = (b: boolean) => (b ? "yes" : "**no**");

/** One strategy run's table cells, from the profile on (both the console and README tables). */
export function summaryCells(s: Summary): string[] {
  return [
    s.profile,
    s.strategy,
    `${s.cloudPct.toFixed(1)}%`,
    `${fmt(s.ttftP50)} / ${fmt(s.ttftP95)}`,
    `${fmt(s.totalP50)} / ${fmt(s.totalP95)}`,
    fmt(s.tokensPerSecP50),
    fmt(s.bytesPerToken),
    fmt(s.tripsPerToken),
    s.tokensPerTrip ? fmt(s.tokensPerTrip) : "",
    fmt(s.tokensPerRtt),
    `${s.agreementPct.toFixed(2)}%`,
    s.routes,
  ];
}

/** Rewrites the `router` section of bench/README.md. */
export async function routerReadme(r: RouterReport): Promise<void> {
  const t = r.thresholds;
  const profiles = Object.values(PROFILES).map((p) =>
    `${p.name}: RTT ${p.rttMs} ms ± ${p.jitterMs / 2}, up ${
      fmt(p.upBytesPerSec * 8 / 1e6)
    } Mbit/s, down ${fmt(p.downBytesPerSec * 8 / 1e6)} Mbit/s`
  );
  const table = (variant: string) =>
    markdownTable([
      [
        "profile",
        "strategy",
        "cloud FLOPs",
        "TTFT p50/p95 ms",
        "total p50/p95 ms",
        "tok/s p50",
        "B/token",
        "trips/token",
        "tokens/trip",
        "tokens/RTT",
        "agreement",
        "routes",
      ],
      ...r.rows.filter((s) => s.variant === variant).map(summaryCells),
    ]);
  const conn = r.connClose;
  const connSection = !conn ? "" : `
### Deno's keep-alive bug and draft streaming

Draft streaming sends one request per row. On Deno 2.8.3–2.9.5 \`Deno.serve\` answers
\`Connection: close\` to requests whose body does not fit its first read (denoland/deno#36657,
docs/edge-deployers.md), so each such request opens a new connection. Measured on this Deno
(${Deno.version.deno}) against \`Deno.serve\` on loopback, ${
    conn.results[0]?.requests ?? 0
  } stream-frame-sized requests one at a time, then 16 at a time:

${
    markdownTable([
      [
        "body",
        "bytes",
        "connections (1 at a time)",
        "connections (16 at a time)",
        "`Connection: close` answers",
        "ms/request (loopback)",
      ],
      ...conn.results.map((c) => [
        c.label,
        String(c.bytes),
        String(c.sequentialConnections),
        String(c.concurrentConnections),
        String(c.closed),
        fmt(c.meanMs),
      ]),
    ])
  }

The limit is on what reaches the server in its first read, headers included: ${
    conn.results.filter((c) => c.closed > 0).map((c) => c.label).join(", ") || "no body"
  } got \`Connection: close\` on every request, ${
    conn.results.filter((c) => c.closed === 0).map((c) => c.label).join(", ") || "none"
  } kept the connection. The bench's simulated link charges no connection set-up, so the tables
above do not include it (on loopback a new connection costs well under a millisecond). On a real
network every such row would pay a TCP handshake (one more RTT) and, over TLS 1.3, one more. The
cost model's cloud-class good-4G streaming rate (p50 over the workload) with those extra round trips per row:
${
    conn.rates.map((x) =>
      `${x.extraRtts === 0 ? "none" : `+${x.extraRtts} RTT`}: ${fmt(x.tokensPerSec)} tok/s`
    ).join("; ")
  } (the floor is ${t.minTokensPerSec}). So on those Deno versions serve the edge with the Node
host or behind a keep-alive proxy, as docs/edge-deployers.md says; with HTTP/2 (one connection
for all rows) the question does not arise.
`;
  const errs = r.ttftErrors.filter((e) => e.variant === "cloud-class");
  const errSection = errs.length === 0 ? "" : `
### TTFT prediction against measurement

Each split request's TTFT margin over the same prompt's all-cloud request, measured minus what
the cost model predicted (> 0: the split did worse against all-cloud than predicted), cloud-class,
over the runs with the router's wire (the router and split 4 + streaming: f16 prompt rows
pipelined in chunks of 16). The policy's \`rowPrefillMarginMs\` (${t.rowPrefillMarginMs} ms) is there to cover the row-prefill line: token prefill shares all-cloud's path.

${
    markdownTable([
      ["profile", "prefill", "requests", "p50 ms", "p90 ms"],
      ...errs.map((e) => [e.profile, e.prefill, String(e.n), fmt(e.p50), fmt(e.p90)]),
    ])
  }
`;
  const body = `## router

\`deno task bench router [--quick]\` — stories260K, ${r.jobs.length} requests per strategy and
profile (story openings short/medium/hard and synthetic long prompts of ~320 tokens),
${r.maxTokens} tokens each, greedy. Real HTTP to a real edge (\`edge/app.ts\`) on loopback
through a proxy that delays and throttles it (${profiles.join("; ")}). The device is this
process's main thread holding the embedding, layers [0, 4) and the head; the edge (wasm f32
engine) runs in one worker, the proxies and the edge's pace in another, so neither side's compute
holds back the other's timers (bench/_remote_edge.ts). The proxy's latency applies to every
chunk of an answer: a token streamed after an early first chunk still arrives half a round trip
after the edge wrote it. "all-cloud" is the edge's OpenAI
chat route, text in, SSE out, each token flushed as it is computed; "fixed split 3" and the
router run through \`routedGenerate\` (split sessions opened ahead of the query, as an app would
when the user starts typing). "cloud FLOPs" is edge FLOPs over what the edge runs all-cloud;
"agreement" compares tokens position by position with the all-cloud answer. "split 4 + drafts"
drafts stop-and-wait (≤ 6 rows a frame, one round trip each); "split 4 + streaming" streams
drafts (wire 1.1: every row its own request as soon as it is computed, ≤ ${r.streamProfile.maxInFlight}
in flight; the edge computes only rows on its verified branch). "trips/token" counts requests;
"tokens/trip" counts decode tokens per round trip waited for (a streamed row sent while others
are in flight overlaps them); "tokens/RTT" is tokens/s p50 × the link's RTT. The router may send
a prompt as token ids (token prefill, wire 1.2: the edge runs the whole model over the prompt, the
device its own [0, 4) meanwhile) when the row prefill would miss the TTFT limit: "K4+ids" in
"routes"; the prompt's extra edge FLOPs count in "cloud FLOPs". When pipelined rows are predicted
late and the same rows in one frame are not (the TTFT corrector learned that pipelined uploads
stall on this host), the prompt goes in one frame: "K4+whole". The router keeps one
\`TtftCorrector\` per profile, fed by its own queries only (the fixed strategies run without one).

Two compute variants:

- **cloud-class** (the one the targets are judged on): compute paced to the SmolLM2-135M-shaped
  engine of \`bench engine\` (${r.pace.name}: ${fmt(r.pace.decodeMs)} ms a decode token,
  ${fmt(r.pace.prefillMs)} ms a prompt token, for the whole model; a forward over a layer range
  takes its share) on both sides, and boundary rows counted at width 576 on the link (×${
    fmt(r.pace.rowBytesScale)
  } bytes). The device is as fast per layer as the edge here: a phone with wasm q8_0 ≈ this
  2-core box; a GPU cloud would make all-cloud faster and the rate criterion harder.
- **unscaled**: the tiny model's real compute (the wasm f32 engine on both sides, ${
    fmt(r.edgeFlopsPerSec / 1e9)
  } GFLOP/s, microseconds a token) and its real 64-wide rows: all-cloud looks instant, which no
  real cloud is; kept for comparison with earlier runs.
  On this variant the split TTFTs also carry a Deno artefact: Deno's \`fetch\` leaves
  TCP_NODELAY off (denoland/deno#35581), so a streamed request body (the pipelined prompt) can
  stall ~40 ms on its last chunk (Nagle + delayed ACK), device → proxy and proxy → edge; with
  compute of microseconds it shows. Browsers and Node's \`fetch\` set TCP_NODELAY.

### cloud-class

${table("cloud-class")}

### unscaled

${table("unscaled")}

### Targets (router vs all-cloud, p50 per request)

"No noticeable slow-down" = TTFT ≤ ${t.ttftRatio} × all-cloud's + ${t.ttftSlackMs} ms, and
streaming tokens/s ≥ max(${t.minTokensPerSec} tok/s reading floor, ${t.tokensPerSecRatio} ×
min(all-cloud's tokens/s, ${t.maxUsefulTokensPerSec})). The floor is calibrated here: skimming
speed (700 words/min) × this tokenizer's measured ${r.tokensPerWord.toFixed(2)} tokens per word.

${
    markdownTable([
      [
        "variant",
        "profile",
        "saved",
        "≥ 60%",
        "≥ 70%",
        "agreement ≥ 99%",
        "TTFT router / cloud",
        "tok/s router (need) / cloud",
        "total ×",
        "TTFT ok",
        "rate ok",
      ],
      ...r.targets.map((x) => [
        x.variant,
        x.profile,
        `${x.saved.toFixed(1)}%`,
        yes(x.met.savings60),
        yes(x.met.savings70),
        `${x.agreement.toFixed(2)}% ${yes(x.met.agreement)}`,
        `${fmt(x.ttftRouter)} / ${fmt(x.ttftCloud)} ms`,
        `${fmt(x.tpsRouter)} (${fmt(x.tpsRequired)}) / ${fmt(x.tpsCloud)}`,
        `×${x.totalRatio.toFixed(2)}`,
        yes(x.met.ttft),
        yes(x.met.rate),
      ]),
    ])
  }

### Calibration

In process on the same workload (no network), K = 4. The device drafts through an exit adapter
(runtime/exit_adapter.ts: one ${r.deviceLayers}→final affine map before the head, fitted by distillation on
${r.exitFit.options.count} × ${
    r.exitFit.options.length ?? 256
  } tokens the model samples itself, not on this workload): on the
workload's decode positions the early-exit head agrees with the whole model on ${
    (100 * r.exitFit.acceptance).toFixed(1)
  }% with it, ${(100 * r.exitFit.plainAcceptance).toFixed(1)}% without (on its training text ${
    (100 * r.exitFit.trainAdapted).toFixed(1)
  }% vs ${(100 * r.exitFit.trainPlain).toFixed(1)}%). Drafting variants (draft while the
early-exit top-1 ≥ draftTop1, at most maxDraft a trip) are all handed to the policy, which
weighs each with the cost model per link; the default (\`speculation[4]\`) is the one with the
most tokens per trip within the 5-point savings tolerance: draftTop1 ${
    off(t.draftTop1)
  } × ${t.maxDraft}. localTop1 (emit an early-exit token unverified) ${off(t.localTop1)}: no
threshold keeps ≥ 99% agreement on stories260K. Draft streaming's mismatch rate: the adapted
early-exit head after layer 4 agrees with the whole model on ${
    (100 * r.streamProfile.acceptance).toFixed(1)
  }% of the workload's decode positions (teacher-forced), the policy's \`streaming[4]\`.

${
    markdownTable([
      [
        "draftTop1",
        "maxDraft",
        "localTop1",
        "tokens/trip",
        "edge rows/token",
        "cloud FLOPs",
        "agreement",
      ],
      ...r.calib.map((c) => [
        off(c.draftTop1),
        c.draftTop1 > 1 ? "" : c.maxDraft,
        off(c.localTop1),
        fmt(c.tokensPerRoundTrip),
        fmt(c.rowsPerToken),
        `${(100 * c.cloudShare).toFixed(1)}%`,
        `${(100 * c.agreement).toFixed(2)}%`,
      ]),
    ])
  }

Wire choices at K = 4 (free-running: the split generates on its own; teacher-forced: each
position predicted from the all-cloud context). The router sends prompts in the cheapest dtype
with ≥ 99% on both — **${r.prefillWire}** — and decode rows in f32, pipelined in chunks of 16
rows.

${
    markdownTable([
      ["prompt wire", "decode wire", "free-running", "teacher-forced"],
      ...r.wires.map((w) => [
        w.prefill,
        w.decode,
        `${(100 * w.free).toFixed(2)}%`,
        `${(100 * w.forced).toFixed(2)}%`,
      ]),
    ])
  }

Plot: \`bench/results/router.svg\` (cloud-class savings vs p50 latency per profile; hollow points
are the cost model's prediction per split K).
${errSection}${connSection}`;
  await updateReadme("router", body);
}
