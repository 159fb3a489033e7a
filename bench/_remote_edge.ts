/**
 * The main thread's handle on `_edge_worker.ts`: an edge and network proxies served from
 * their own threads, so the device's compute on the main thread cannot delay them.
 *
 * @example
 * ```ts
 * import { RemoteEdge } from "./_remote_edge.ts";
 * import { PROFILES } from "./_netsim.ts";
 * const far = new RemoteEdge();
 * const edge = await far.serve(new URL("../../shared/models/stories260K/", import.meta.url), "m");
 * const proxy = await far.proxy(edge.url, PROFILES.good4g, 1, 9);
 * await fetch(`${proxy.url}/healthz`);
 * console.log(await proxy.close()); // { bytesUp, bytesDown, requests }
 * await edge.close();
 * far.terminate();
 * ```
 *
 * @module
 */

import type { EdgeWorkerRequest } from "./_edge_worker.ts";
import type { NetProfile } from "./_netsim.ts";
import type { PaceSpec } from "./_pace.ts";

type Op = EdgeWorkerRequest extends infer R ? R extends { id: number } ? Omit<R, "id"> : never
  : never;

/** What a closed proxy carried. */
export interface ProxyCounts {
  /** Body bytes sent to the edge (rows at the simulated width). */
  bytesUp: number;
  /** Body bytes received from the edge. */
  bytesDown: number;
  /** Requests forwarded. */
  requests: number;
}

/**
 * An edge in one Worker and the network proxies in another: the edge computes streamed
 * generations as fast as it can (only their release is paced), which on a shared thread would
 * hold back the proxies' timers (measured: 12 concurrent poor-3G requests had their TTFT
 * stretched from ~0.35 s to ~2.5 s).
 */
export class RemoteEdge {
  readonly #edge: Worker;
  readonly #net: Worker;
  readonly #waiting = new Map<number, (m: Record<string, unknown>) => void>();
  readonly #onEdge = new Set<string>();
  #next = 1;

  /** Starts the workers. */
  constructor() {
    const start = () => {
      const w = new Worker(new URL("./_edge_worker.ts", import.meta.url), { type: "module" });
      w.onmessage = (e: MessageEvent<Record<string, unknown> & { id: number }>) => {
        const done = this.#waiting.get(e.data.id);
        this.#waiting.delete(e.data.id);
        done?.(e.data);
      };
      return w;
    };
    this.#edge = start();
    this.#net = start();
  }

  #call(op: Op): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const worker = op.op === "serve" || (op.op === "close-server" && this.#onEdge.has(op.server))
      ? this.#edge
      : this.#net;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, (m) => (m.error ? reject(new Error(String(m.error))) : resolve(m)));
      worker.postMessage({ ...op, id });
    });
  }

  /**
   * Serves stories260K from `dir` as `modelId`; with `pace`, the URL is a paced front in the
   * proxies' thread.
   */
  async serve(
    dir: URL,
    modelId: string,
    pace?: PaceSpec,
  ): Promise<{ url: string; close(): Promise<void> }> {
    const edge = String((await this.#call({ op: "serve", dir: dir.href, modelId })).url);
    this.#onEdge.add(edge);
    const front = pace
      ? String((await this.#call({ op: "pace", dir: dir.href, target: edge, pace })).url)
      : undefined;
    return {
      url: front ?? edge,
      close: async () => {
        if (front) await this.#call({ op: "close-server", server: front });
        await this.#call({ op: "close-server", server: edge });
        this.#onEdge.delete(edge);
      },
    };
  }

  /**
   * A network proxy in front of `target` with profile `net`; `/forward` rows count `scale`
   * bytes per real byte on the uplink (token ids count once).
   */
  async proxy(
    target: string,
    net: NetProfile,
    seed: number,
    scale: number,
  ): Promise<{ url: string; close(): Promise<ProxyCounts> }> {
    const { url } = await this.#call({ op: "proxy", target, net, seed, scale });
    return {
      url: String(url),
      close: async () =>
        (await this.#call({ op: "close-proxy", proxy: String(url) })) as unknown as ProxyCounts,
    };
  }

  /** Stops the workers (and everything they serve). */
  terminate(): void {
    this.#edge.terminate();
    this.#net.terminate();
  }
}
