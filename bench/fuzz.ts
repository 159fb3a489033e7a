/**
 * `deno task bench fuzz [--quick] [--cases N] [--seed S]`: the long hostile-input run.
 * Decoder cases (bytes → frame or typed error) and edge cases (every route, see
 * `tests/_edge_fuzz.ts`) from fixed seeds; prints the case counts, the distribution of
 * statuses and error codes, and every 5xx, crash or broken answer (the pass condition is
 * zero). Default 100k edge cases + 100k decoder cases; `--quick` 10k + 10k.
 *
 * @module
 */

import fc from "fast-check";
import { parseArgs } from "node:util";
import { decodeOutcome, frameBytes } from "../tests/_wire_fuzz.ts";
import { type FuzzCase, fuzzCase, startFuzzTarget } from "../tests/_edge_fuzz.ts";
import { printTable, writeResults } from "./_results.ts";

const BATCH = 1000;

function tally(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Runs the fuzz bench. */
export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      cases: { type: "string" },
      seed: { type: "string", default: "1" },
    },
  });
  const cases = Number(values.cases ?? (values.quick ? 10_000 : 100_000));
  const seed = Number(values.seed);
  const failures: string[] = [];

  // The decoder alone.
  const t0 = performance.now();
  const decoded = new Map<string, number>();
  for (let b = 0; b * BATCH < cases; b++) {
    for (const bytes of fc.sample(frameBytes, { seed: seed * 7919 + b, numRuns: BATCH })) {
      try {
        tally(decoded, decodeOutcome(bytes));
      } catch (e) {
        tally(decoded, "CRASH");
        if (failures.length < 20) failures.push(`decoder: ${(e as Error).message}`);
      }
    }
  }
  const decoderMs = performance.now() - t0;

  // Every route of an in-process edge.
  const target = await startFuzzTarget();
  const statuses = new Map<string, number>();
  const kinds = new Map<string, number>();
  let ran = 0;
  let serving = true;
  const t1 = performance.now();
  for (let b = 0; ran < cases; b++) {
    const batch: FuzzCase[] = fc.sample(fuzzCase, { seed: seed * 104729 + b, numRuns: BATCH });
    for (const c of batch) {
      if (ran >= cases) break;
      ran++;
      tally(kinds, c.kind);
      try {
        const { status, problem } = await target.run(c);
        tally(statuses, String(status || "not sent"));
        if (problem) {
          tally(statuses, "BROKEN");
          if (failures.length < 20) failures.push(`${problem}\n    case: ${JSON.stringify(c)}`);
        }
      } catch (e) {
        tally(statuses, "CRASH");
        if (failures.length < 20) failures.push(`crash: ${e}\n    case: ${JSON.stringify(c)}`);
      }
    }
    if (!(await target.stillServes())) serving = false;
  }
  const edgeMs = performance.now() - t1;
  target.dispose();

  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  console.log(`decoder: ${cases} cases in ${(decoderMs / 1000).toFixed(1)} s`);
  printTable([["outcome", "cases"], ...sorted(decoded)]);
  console.log(
    `\nedge: ${ran} cases in ${(edgeMs / 1000).toFixed(1)} s (${
      sorted(kinds).map(([k, n]) => `${k} ${n}`).join(", ")
    })`,
  );
  printTable([["status", "cases"], ...sorted(statuses)]);
  const fiveHundreds = [...statuses].filter(([s]) => Number(s) >= 500).reduce(
    (a, [, n]) => a + n,
    0,
  );
  console.log(
    `\n5xx: ${fiveHundreds}; crashes or broken answers: ${failures.length}; still serving: ${serving}`,
  );
  for (const f of failures) console.log(`  ${f}`);
  const path = await writeResults("fuzz", {
    seed,
    decoder: { cases, ms: Math.round(decoderMs), outcomes: Object.fromEntries(decoded) },
    edge: {
      cases: ran,
      ms: Math.round(edgeMs),
      kinds: Object.fromEntries(kinds),
      statuses: Object.fromEntries(statuses),
    },
    fiveHundreds,
    failures,
    serving,
  });
  console.log(`results: ${path}`);
  if (failures.length || fiveHundreds || !serving) Deno.exitCode = 1;
}
