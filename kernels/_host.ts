/**
 * The only place the kernels look at their host: Node's version (for a relaxed-SIMD bug) and
 * how to start a Worker from source text (web Workers in Deno and browsers, `worker_threads`
 * in Node). Everything else in kernels/ uses Web standards only.
 *
 * @module
 */

/** A started worker, whatever the host. */
export interface HostWorker {
  /** Sends one message (structured clone). */
  post(message: unknown): void;
  /** Resolves with the first message the worker sends, rejects on its first error. */
  first(): Promise<unknown>;
  /** Stops the worker at once. */
  terminate(): void;
}

/** Node's major version, or undefined on any other host (Deno, browsers, workerd). */
export function nodeMajor(): number | undefined {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
  if (g.Deno !== undefined) return undefined;
  const v = g.process?.versions?.node;
  return v ? Number(v.split(".")[0]) : undefined;
}

/** Whether this host can start workers at all, and if not, why. */
export function workerSupport(): { ok: boolean; reason: string } {
  if (typeof Worker === "function") return { ok: true, reason: "web Worker" };
  if (nodeMajor() !== undefined) return { ok: true, reason: "node:worker_threads" };
  return { ok: false, reason: "this host has no Worker" };
}

/** Starts a worker running `source` (plain JavaScript, see _worker_src.ts). */
export async function startWorker(source: string): Promise<HostWorker> {
  if (typeof Worker === "function") {
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    const w = new Worker(url, { type: "module" });
    URL.revokeObjectURL(url);
    return {
      post: (m) => w.postMessage(m),
      first: () =>
        new Promise((resolve, reject) => {
          w.onmessage = (e) => resolve(e.data);
          w.onerror = (e) => {
            e.preventDefault();
            reject(new Error(e.message));
          };
        }),
      terminate: () => w.terminate(),
    };
  }
  const { Worker: NodeWorker } = await import("node:worker_threads");
  const w = new NodeWorker(source, { eval: true });
  w.unref(); // never keep the process alive
  return {
    post: (m) => w.postMessage(m),
    first: () =>
      new Promise((resolve, reject) => {
        w.once("message", resolve);
        w.once("error", reject);
      }),
    terminate: () => void w.terminate(),
  };
}
