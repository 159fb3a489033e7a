/**
 * `deno task bench load [--quick]`: autocannon against an edge running in its own process on
 * loopback (`_edge_server.ts`), with API keys on. Three phases, each on a fresh edge process:
 *
 * | phase     | what                                                                  |
 * | --------- | --------------------------------------------------------------------- |
 * | decode    | C connections, 2·C split sessions over 4 keys, one-row decode frames (real boundary activations of stories260K, split 2) |
 * | ratelimit | the same at 100 requests/s per key: the edge answers the excess with 429 |
 * | churn     | open a session + prefill the 4-row prompt, never close: LRU under an 8 MiB KV budget |
 *
 * Reports throughput, p50/p99 latency, status counts, errors (anything but 2xx and the
 * designed 429s) and the edge process's peak RSS (VmHWM); writes bench/results/load.json.
 *
 * @module
 */

import autocannon from "autocannon";
import { Buffer } from "node:buffer";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { digestModel, hexToBytes } from "../runtime/digest.ts";
import { encodeFrame } from "../runtime/wire.ts";
import { printTable, writeResults } from "./_results.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const ID = "stories260K";
const K = 2;
/** int8 on the wire: small frames (Deno.serve closes keep-alive connections for bodies past ~370 bytes). */
const WIRE = "int8" as const;
const KEYS = [
  "load-key-0-0123456789",
  "load-key-1-0123456789",
  "load-key-2-0123456789",
  "load-key-3-0123456789",
];
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const digest = (await digestModel(model)).modelDigest!;
const { dim } = model.config;

// Boundary activations of a real greedy run: rows [0, T) are the input of layer K.
const PROMPT = [1, 403, 407, 261];
const device = new RefEngine(model);
const tokens = [...PROMPT, ...generate(device, PROMPT, { maxTokens: 124, stopAtEos: false })];
const T = tokens.length;
const boundary = device.forward(device.createCache([0, K]), device.embed(tokens), 0, 0, K);

interface EdgeProcess {
  url: string;
  child: Deno.ChildProcess;
}

async function startEdge(limits: Record<string, number>): Promise<EdgeProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_edge_server.ts", import.meta.url).pathname,
      "--limits",
      JSON.stringify(limits),
    ],
    env: { TANDEM_API_KEYS: KEYS.join(",") },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/serving (\S+)/.test(out)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`edge exited: ${out}`);
    out += value;
  }
  reader.releaseLock();
  return { url: /serving (\S+)/.exec(out)![1], child };
}

async function stopEdge(edge: EdgeProcess): Promise<{ peakRssMiB: number }> {
  const status = await Deno.readTextFile(`/proc/${edge.child.pid}/status`).catch(() => "");
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  edge.child.kill("SIGTERM");
  await edge.child.status;
  await edge.child.stdout.cancel().catch(() => {});
  return { peakRssMiB: Math.round(kb / 1024) };
}

function frame(id: string, seq: number, from: number, to: number): Buffer {
  const bytes = encodeFrame({
    dtype: WIRE,
    split: K,
    dim,
    pos: from,
    seq,
    modelId: ID,
    session: hexToBytes(id.replaceAll("-", "")),
    digest: hexToBytes(digest),
    rows: boundary.subarray(from * dim, to * dim),
  });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const auth = (i: number) => ({ authorization: `Bearer ${KEYS[i % KEYS.length]}` });

interface Session {
  id: string;
  key: number;
  seq: number;
  leasedAt?: number;
}

/** Opens `n` sessions over the keys and prefills each with the prompt's rows. */
async function openSessions(url: string, n: number): Promise<Session[]> {
  const sessions: Session[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/v1/sessions`, {
      method: "POST",
      headers: auth(i),
      body: JSON.stringify({ model: ID, split: K, digest }),
    });
    if (res.status !== 201) throw new Error(`open: ${res.status} ${await res.text()}`);
    const id = (await res.json()).id;
    const pre = await fetch(`${url}/v1/sessions/${id}/forward`, {
      method: "POST",
      headers: auth(i),
      body: new Uint8Array(frame(id, 0, 0, PROMPT.length)),
    });
    if (pre.status !== 200) throw new Error(`prefill: ${pre.status} ${await pre.text()}`);
    await pre.body?.cancel();
    sessions.push({ id, key: i, seq: 1 });
  }
  return sessions;
}

type Ctx = { s?: Session; seq?: number };

/**
 * Decode load: each request leases a free session (or, when none is free, the longest-leased
 * one) and sends the frame for its next sequence number. A lease lost with its connection
 * (autocannon rebuilds a request when a connection closes) is simply reused: re-sending a
 * sequence number is idempotent on the edge, so a frame that did run answers from its store.
 */
async function decodePhase(url: string, connections: number, duration: number) {
  const pool = await openSessions(url, 3 * connections);
  const lease = (): Session => {
    const s = pool.find((p) => p.leasedAt === undefined) ??
      pool.reduce((a, b) => (a.leasedAt! < b.leasedAt! ? a : b));
    s.leasedAt = performance.now();
    return s;
  };
  const result = await autocannon({
    url,
    connections,
    duration,
    pipelining: 1,
    requests: [{
      method: "POST",
      setupRequest: (req: Record<string, unknown>, ctx: Ctx) => {
        const s = ctx.s = lease();
        ctx.seq = s.seq;
        const pos = PROMPT.length + ((s.seq - 1) % (T - PROMPT.length)); // wraps: rolls back
        return {
          ...req,
          path: `/v1/sessions/${s.id}/forward`,
          headers: auth(s.key),
          body: frame(s.id, s.seq, pos, pos + 1),
        };
      },
      onResponse: (status: number, _body: string, ctx: Ctx) => {
        const s = ctx.s!;
        if (status === 200) s.seq = Math.max(s.seq, ctx.seq! + 1);
        s.leasedAt = undefined;
      },
    }],
  });
  return summarize(result);
}

/** Sessions opened and prefilled, never closed. */
async function churnPhase(url: string, connections: number, duration: number) {
  const result = await autocannon({
    url,
    connections,
    duration,
    pipelining: 1,
    requests: [
      {
        method: "POST",
        path: "/v1/sessions",
        headers: auth(0),
        body: JSON.stringify({ model: ID, split: K, digest }),
        onResponse: (status: number, body: string, ctx: Record<string, string>) => {
          ctx.id = status === 201 ? JSON.parse(body).id : "";
        },
      },
      {
        method: "POST",
        setupRequest: (req: Record<string, unknown>, ctx: Record<string, string>) => {
          const id = ctx.id || crypto.randomUUID();
          return {
            ...req,
            path: `/v1/sessions/${id}/forward`,
            headers: auth(0),
            body: frame(id, 0, 0, PROMPT.length),
          };
        },
      },
    ],
  });
  const health = await (await fetch(`${url}/healthz`)).json();
  return { ...summarize(result), sessionsHeld: health.sessions, kvBytes: health.kvBytes };
}

// deno-lint-ignore no-explicit-any
function summarize(r: any) {
  const statuses: Record<string, number> = {};
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) {
    statuses[code] = (v as { count: number }).count;
  }
  const unexpected =
    Object.entries(statuses).filter(([c]) => !/^2|^429$/.test(c)).reduce((a, [, n]) => a + n, 0) +
    r.errors + r.timeouts;
  return {
    requests: r.requests.total,
    reqPerSec: Math.round(r.requests.average),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    statuses,
    rateLimited: statuses["429"] ?? 0,
    errors: unexpected,
  };
}

/** Runs the load bench. */
export async function run(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const connections = quick ? 8 : 32;
  const duration = quick ? 3 : 10;
  const phases: Record<string, Record<string, unknown>> = {};
  const unlimited = { ratePerSecond: 0, maxSessionsPerKey: 10_000 };

  let edge = await startEdge(unlimited);
  phases.decode = {
    ...(await decodePhase(edge.url, connections, duration)),
    ...(await stopEdge(edge)),
  };
  edge = await startEdge({ ratePerSecond: 100, rateBurst: 50, maxSessionsPerKey: 10_000 });
  phases.ratelimit = {
    ...(await decodePhase(edge.url, connections, duration)),
    ...(await stopEdge(edge)),
  };
  const budget = 8 * 2 ** 20;
  edge = await startEdge({ ...unlimited, kvBudgetBytes: budget, maxSessions: 100_000 });
  phases.churn = {
    ...(await churnPhase(edge.url, connections, duration)),
    ...(await stopEdge(edge)),
    kvBudgetBytes: budget,
  };

  console.log(
    `edge: stories260K split ${K}, ${connections} connections, ${duration} s per phase, own process (peak RSS = VmHWM)`,
  );
  printTable([
    ["phase", "requests", "req/s", "p50 ms", "p99 ms", "429", "errors", "peak RSS MiB"],
    ...Object.entries(phases).map(([name, p]) =>
      [
        name,
        p.requests,
        p.reqPerSec,
        p.p50Ms,
        p.p99Ms,
        p.rateLimited,
        p.errors,
        p.peakRssMiB,
      ] as (string | number)[]
    ),
  ]);
  const churn = phases.churn as { sessionsHeld: number; kvBytes: number };
  console.log(
    `churn: ${churn.sessionsHeld} sessions held, ${
      (churn.kvBytes / 2 ** 20).toFixed(1)
    } MiB KV of an ${budget / 2 ** 20} MiB budget`,
  );
  const path = await writeResults("load", {
    quick,
    connections,
    durationSec: duration,
    split: K,
    phases,
  });
  console.log(`results: ${path}`);
  const errors = Object.values(phases).reduce((a, p) => a + (p.errors as number), 0);
  if (errors) {
    console.log(`FAIL: ${errors} errors other than the designed 429s`);
    Deno.exitCode = 1;
  }
}
