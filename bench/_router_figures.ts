/**
 * The router bench's figures: per variant, profile and strategy — cloud FLOPs vs all-cloud,
 * TTFT and total (p50/p95), tokens/s, bytes, trips per token, agreement — the targets check,
 * the SVG plot, results/router.json and the README section.
 *
 * @module
 */

import { DEFAULT_THRESHOLDS } from "../runtime/router/policy.ts";
import type { StreamProfile } from "../runtime/router/types.ts";
import type { ConnResult } from "./_conn_close.ts";
import type { WireDtype } from "../runtime/wire.ts";
import { PROFILES } from "./_netsim.ts";
import type { PaceSpec } from "./_pace.ts";
import { fmt, printTable } from "./_results.ts";
import type { Outcome } from "./_router_runs.ts";
import { routerReadme, type RouterReport, summaryCells } from "./_router_report.ts";
import type { WireAgreement } from "./_router_wire.ts";
import { agreement, type CalibrationRow, type Job } from "./_router_workload.ts";
import { scatterSvg } from "./_svg.ts";

/** A strategy's run on one profile. */
/** The routes column's tag for how a split sent its prompt: token ids, or rows in one frame. */
function prefillTag(prefill: string | undefined): string {
  return prefill === "tokens" ? "+ids" : prefill === "whole" ? "+whole" : "";
}

export interface StrategyRun {
  variant: string;
  profile: string;
  strategy: string;
  outcomes: Outcome[];
  bytesUp: number;
  bytesDown: number;
  requests: number;
}

/** A strategy's figures on one profile. */
export interface Summary {
  variant: string;
  profile: string;
  strategy: string;
  cloudPct: number;
  ttftP50: number;
  ttftP95: number;
  totalP50: number;
  totalP95: number;
  tokensPerSecP50: number;
  kbUp: number;
  kbDown: number;
  bytesPerToken: number;
  tripsPerToken: number;
  tokensPerTrip: number;
  /** Tokens streamed per round-trip time of the link (tok/s p50 × RTT). */
  tokensPerRtt: number;
  agreementPct: number;
  routes: string;
}

/** Router vs all-cloud on one variant and profile. */
export interface Target {
  variant: string;
  profile: string;
  saved: number;
  agreement: number;
  ttftRouter: number;
  ttftCloud: number;
  tpsRouter: number;
  tpsCloud: number;
  tpsRequired: number;
  totalRatio: number;
  met: { savings60: boolean; savings70: boolean; agreement: boolean; ttft: boolean; rate: boolean };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : 0;
};

/** Aggregates one strategy run. */
export function summarize(r: StrategyRun): Summary {
  const o = r.outcomes;
  let same = 0, of = 0, edge = 0, whole = 0, tokens = 0, frames = 0, trips = 0, decoded = 0;
  const routes = new Map<string, number>();
  for (const x of o) {
    const a = agreement(x.tokens, x.reference);
    same += a.same;
    of += a.of;
    edge += x.edgeFlops;
    whole += x.wholeFlops;
    tokens += x.tokens.length;
    frames += x.frames;
    trips += x.decodeTrips;
    if (x.decodeTrips > 0) decoded += Math.max(0, x.tokens.length - 1);
    const ids = prefillTag(x.decision?.prefill);
    const first = x.route === "cloud"
      ? "cloud"
      : x.route === "local"
      ? "local"
      : `K${x.split}${ids}`;
    const key = [first, ...(x.later ?? [])].join("→"); // later: re-routed or fell back
    routes.set(key, (routes.get(key) ?? 0) + 1);
  }
  const tps = o.map((x) =>
    x.tokens.length > 1 ? 1000 * (x.tokens.length - 1) / Math.max(1e-9, x.totalMs - x.ttftMs) : 0
  );
  return {
    variant: r.variant,
    profile: r.profile,
    strategy: r.strategy,
    cloudPct: 100 * edge / whole,
    ttftP50: pct(o.map((x) => x.ttftMs), 0.5),
    ttftP95: pct(o.map((x) => x.ttftMs), 0.95),
    totalP50: pct(o.map((x) => x.totalMs), 0.5),
    totalP95: pct(o.map((x) => x.totalMs), 0.95),
    tokensPerSecP50: pct(tps, 0.5),
    kbUp: r.bytesUp / 1024,
    kbDown: r.bytesDown / 1024,
    bytesPerToken: (r.bytesUp + r.bytesDown) / Math.max(1, tokens),
    tripsPerToken: frames / Math.max(1, tokens),
    tokensPerTrip: trips > 0 ? decoded / trips : 0,
    tokensPerRtt: pct(tps, 0.5) *
      (Object.values(PROFILES).find((p) => p.name === r.profile)?.rttMs ?? 0) / 1000,
    agreementPct: of > 0 ? 100 * same / of : 100,
    routes: [...routes].map(([k, v]) => `${k}×${v}`).join(" "),
  };
}

/** Everything the bench measured. */
export interface RouterRun {
  quick: boolean;
  runs: StrategyRun[];
  modelled: {
    variant: string;
    profile: string;
    split: number;
    drafting: boolean;
    streamed: boolean;
    tokensPerSec: number;
    cloudShare: number;
    totalMs: number;
  }[];
  calib: CalibrationRow[];
  wires: WireAgreement[];
  thresholds: { draftTop1: number; maxDraft: number; localTop1: number; minTokensPerSec: number };
  prefillWire: WireDtype;
  tokensPerWord: number;
  pace: PaceSpec;
  maxTokens: number;
  jobs: Job[];
  flopsPerSec: number;
  edgeFlopsPerSec: number;
  deviceLayers: number;
  streamProfile: StreamProfile;
  exitFit: RouterReport["exitFit"];
  connClose?: { results: ConnResult[]; rates: { extraRtts: number; tokensPerSec: number }[] };
  writeResults: (name: string, figures: unknown) => Promise<string>;
}

/** How far off the cost model's TTFT margin over all-cloud was, per prefill kind. */
export interface TtftError {
  variant: string;
  profile: string;
  /** "rows" or "tokens" (token prefill). */
  prefill: string;
  /** Requests compared. */
  n: number;
  /** Percentiles of (measured − all-cloud measured) − (predicted − all-cloud predicted), ms. */
  p50: number;
  p90: number;
}

/** The strategies that send prompts as the router does (f16 rows, pipelined). */
const ROUTER_WIRE = /^(router|split \d+ \+ streaming)$/;

/**
 * The split requests' TTFT margin over the same prompt's all-cloud request, measured minus
 * predicted: what `rowPrefillMarginMs` must cover for the TTFT limit to hold as predicted.
 */
function predictionErrors(runs: StrategyRun[]): TtftError[] {
  const out: TtftError[] = [];
  const keys = new Set(runs.map((x) => `${x.variant}\u0000${x.profile}`));
  for (const key of keys) {
    const [variant, profile] = key.split("\u0000");
    const here = runs.filter((x) =>
      x.variant === variant && x.profile === profile && ROUTER_WIRE.test(x.strategy)
    );
    const cloud = new Map(
      runs.find((x) => x.variant === variant && x.profile === profile && x.strategy === "all-cloud")
        ?.outcomes.map((o) => [o.text, o.ttftMs]) ?? [],
    );
    for (const prefill of ["rows", "whole", "tokens"]) {
      const errs = here.flatMap((x) =>
        x.outcomes.filter((o) =>
          o.route === "split" && o.predicted && cloud.has(o.text) &&
          (o.decision?.prefill ?? "rows") === prefill
        ).map((o) =>
          (o.ttftMs - cloud.get(o.text)!) - (o.predicted!.ttftMs - o.predicted!.cloudTtftMs)
        )
      );
      if (errs.length === 0) continue;
      out.push({
        variant,
        profile,
        prefill,
        n: errs.length,
        p50: pct(errs, 0.5),
        p90: pct(errs, 0.9),
      });
    }
  }
  return out;
}

/** Prints, checks targets, plots and writes everything. */
export async function routerFigures(r: RouterRun): Promise<void> {
  const rows = r.runs.map(summarize);
  printTable([
    [
      "variant",
      "profile",
      "strategy",
      "cloud FLOPs",
      "TTFT p50/p95",
      "total p50/p95",
      "tok/s p50",
      "B/token",
      "trips/token",
      "tok/trip",
      "tok/RTT",
      "agreement",
      "routes",
    ],
    ...rows.map((s) => [s.variant, ...summaryCells(s)]),
  ]);
  const t = { ...DEFAULT_THRESHOLDS, ...r.thresholds };
  const targets: Target[] = [];
  for (const variant of new Set(rows.map((s) => s.variant))) {
    for (const net of Object.values(PROFILES)) {
      const find = (name: string) =>
        rows.find((s) => s.variant === variant && s.profile === net.name && s.strategy === name)!;
      const router = find("router"), cloud = find("all-cloud");
      const required = Math.max(
        t.minTokensPerSec,
        t.tokensPerSecRatio * Math.min(cloud.tokensPerSecP50, t.maxUsefulTokensPerSec),
      );
      const saved = 100 - router.cloudPct;
      targets.push({
        variant,
        profile: net.name,
        saved,
        agreement: router.agreementPct,
        ttftRouter: router.ttftP50,
        ttftCloud: cloud.ttftP50,
        tpsRouter: router.tokensPerSecP50,
        tpsCloud: cloud.tokensPerSecP50,
        tpsRequired: required,
        totalRatio: router.totalP50 / cloud.totalP50,
        met: {
          savings60: saved >= 60,
          savings70: saved >= 70,
          agreement: router.agreementPct >= 99,
          ttft: router.ttftP50 <= cloud.ttftP50 * t.ttftRatio + t.ttftSlackMs,
          rate: router.tokensPerSecP50 >= required,
        },
      });
    }
  }
  const ttftErrors = predictionErrors(r.runs);
  for (const e of ttftErrors) {
    console.log(
      `${e.variant} ${e.profile} ${e.prefill} prefill: TTFT vs all-cloud's, measured minus predicted, p50 ${
        fmt(e.p50)
      } ms, p90 ${fmt(e.p90)} ms over ${e.n} requests`,
    );
  }
  for (const x of targets) {
    console.log(
      `${x.variant} ${x.profile}: saves ${x.saved.toFixed(1)}% cloud FLOPs, agreement ${
        x.agreement.toFixed(2)
      }%, TTFT p50 ${fmt(x.ttftRouter)} vs ${fmt(x.ttftCloud)} ms, ${
        fmt(x.tpsRouter)
      } tok/s (need ${fmt(x.tpsRequired)}; all-cloud ${fmt(x.tpsCloud)}), total ×${
        x.totalRatio.toFixed(2)
      } — met: ${Object.entries(x.met).map(([k, v]) => `${k} ${v ? "yes" : "NO"}`).join(", ")}`,
    );
  }
  const suffix = r.quick ? "-quick" : "";
  const svg = scatterSvg({
    title: "Cloud-FLOP savings vs latency (stories260K as a SmolLM2-135M-class model, p50)",
    note:
      `cloud-class variant; filled: measured strategies; hollow: cost model per split K ("+d" = with drafts, "+s" = draft streaming); ${r.maxTokens} tokens`,
    xLabel: "total latency per request, p50 (ms, log)",
    yLabel: "cloud FLOPs saved vs all-cloud (%)",
    series: Object.values(PROFILES).map((net) => ({
      name: net.name,
      points: [
        ...rows.filter((s) => s.profile === net.name && s.variant === "cloud-class").map((s) => ({
          x: s.totalP50,
          y: 100 - s.cloudPct,
          label: s.strategy,
        })),
        ...r.modelled.filter((m) => m.profile === net.name && m.variant === "cloud-class").map((
          m,
        ) => ({
          x: m.totalMs,
          y: 100 * (1 - m.cloudShare),
          label: `K=${m.split}${m.drafting ? "+d" : m.streamed ? "+s" : ""}`,
          hollow: true,
        })),
      ],
    })),
  });
  await Deno.writeTextFile(new URL(`./results/router${suffix}.svg`, import.meta.url), svg);
  const path = await r.writeResults(`router${suffix}`, {
    quick: r.quick,
    maxTokens: r.maxTokens,
    jobs: r.jobs.map((j) => ({
      kind: j.kind,
      promptTokens: j.prompt.length,
      referenceTokens: j.reference.length,
    })),
    flopsPerSec: r.flopsPerSec,
    edgeFlopsPerSec: r.edgeFlopsPerSec,
    deviceLayers: r.deviceLayers,
    streamProfile: r.streamProfile,
    exitFit: r.exitFit,
    connClose: r.connClose,
    pace: r.pace,
    profiles: PROFILES,
    calibration: r.calib,
    wires: r.wires,
    prefillWire: r.prefillWire,
    tokensPerWord: r.tokensPerWord,
    thresholds: t,
    strategies: rows,
    targets,
    ttftErrors,
    modelled: r.modelled,
    // Every request of every run: measured against predicted (the cost model's calibration).
    requests: r.runs.flatMap((x) =>
      x.outcomes.map((o) => ({
        variant: x.variant,
        profile: x.profile,
        strategy: x.strategy,
        kind: o.kind,
        route: o.route === "split" ? `K${o.split}${prefillTag(o.decision?.prefill)}` : o.route,
        ttftMs: o.ttftMs,
        tokensPerSec: o.tokens.length > 1
          ? 1000 * (o.tokens.length - 1) / Math.max(1e-9, o.totalMs - o.ttftMs)
          : 0,
        predicted: o.predicted,
      }))
    ),
    decisions: r.runs.filter((x) => x.strategy === "router").flatMap((x) =>
      x.outcomes.map((o) => ({
        variant: x.variant,
        profile: x.profile,
        kind: o.kind,
        ...o.decision,
        later: o.laterDecisions,
      }))
    ),
  });
  console.log(`wrote ${path} and router${suffix}.svg`);
  if (!r.quick) await routerReadme({ ...r, rows, targets, ttftErrors, thresholds: t });
}
