/**
 * The source of a pool worker, as text: started from a Blob URL (web Workers) or with
 * `eval: true` (Node's worker_threads), so the pool needs no separate file on any host or
 * bundler. It instantiates the kernels on the shared memory with its own stack, then serves
 * jobs announced through the control block (protocol in pool.ts) until told to quit: on a
 * new GEN it claims chunks of rows with compare-exchange on TICKET until none is left.
 *
 * @module
 */

/** Control block slots (Int32 indices), shared by pool.ts and the worker source. */
export const CTRL = {
  GEN: 0, //    job generation: bumped by the caller to announce a job
  DONE: 1, //   chunks the workers finished in the current job
  FN: 2, //     index of the export to run
  ROWS: 3, //   rows to split
  NARGS: 4, //  arguments before (r0, r1)
  QUIT: 5, //   1: leave the loop
  NCHUNKS: 6, // chunks of the current job
  CHUNK: 7, //  rows per chunk (a multiple of the job's grain)
  SLEEP: 8, //  workers blocked in Atomics.wait
  ERROR: 9, //  1: a worker's call threw
  SPIN: 10, //  microseconds a worker polls before it sleeps
  TICKET: 11, // (GEN & 0xffff) << 16 | next unclaimed chunk: claimed by compare-exchange
  ARGS_BYTE: 64, // byte offset of the Float64 arguments
  BYTES: 64 + 8 * 16,
} as const;

/** JavaScript run by each worker. */
export const WORKER_SOURCE = `
const C = ${JSON.stringify(CTRL)};
function serve(init, post) {
  const { module, memory, stackTop, ctrlPtr, index, names } = init;
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  inst.exports.__stack_pointer.value = stackTop;
  const fns = names.map((n) => inst.exports[n]);
  const ctrl = new Int32Array(memory.buffer, ctrlPtr, 16);
  const a = new Float64Array(memory.buffer, ctrlPtr + C.ARGS_BYTE, 16);
  let gen = Atomics.load(ctrl, C.GEN);
  post("ready");
  for (;;) {
    let polls = 0, since = performance.now();
    while (Atomics.load(ctrl, C.GEN) === gen) {
      if ((++polls & 1023) !== 0 || performance.now() - since < ctrl[C.SPIN] / 1000) continue;
      Atomics.add(ctrl, C.SLEEP, 1);
      Atomics.wait(ctrl, C.GEN, gen);
      Atomics.sub(ctrl, C.SLEEP, 1);
      since = performance.now();
    }
    gen = Atomics.load(ctrl, C.GEN);
    if (Atomics.load(ctrl, C.QUIT)) return;
    // Job fields read after seeing GEN are this job's as long as a claim with this GEN
    // succeeds: the caller rewrites them only once every chunk of the job is done.
    const f = fns[ctrl[C.FN]], nargs = ctrl[C.NARGS];
    const rows = ctrl[C.ROWS], chunk = ctrl[C.CHUNK], nchunks = ctrl[C.NCHUNKS];
    const g16 = gen & 0xffff;
    for (;;) {
      const v = Atomics.load(ctrl, C.TICKET);
      const c = v & 0xffff;
      if ((v >>> 16) !== g16 || c >= nchunks) break;
      if (Atomics.compareExchange(ctrl, C.TICKET, v, v + 1) !== v) continue;
      const r0 = c * chunk, r1 = Math.min(r0 + chunk, rows);
      try {
        switch (nargs) {
          case 7: f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], r0, r1); break;
          case 8: f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], r0, r1); break;
          case 10: f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], r0, r1); break;
          default: f(...a.subarray(0, nargs), r0, r1);
        }
      } catch {
        Atomics.store(ctrl, C.ERROR, 1);
      }
      Atomics.add(ctrl, C.DONE, 1);
    }
  }
}
if (typeof self !== "undefined" && typeof self.postMessage === "function") {
  self.onmessage = (e) => { serve(e.data, (m) => self.postMessage(m)); self.close(); };
} else {
  const { parentPort } = require("node:worker_threads");
  parentPort.once("message", (d) => { serve(d, (m) => parentPort.postMessage(m)); parentPort.close(); });
}
`;
