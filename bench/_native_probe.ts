/**
 * The physical ceiling of the kernel bench: a tiny C read-bandwidth probe, compiled on this
 * machine at bench time with `gcc -O3 -march=native` (never committed as a binary), streaming
 * a 512 MiB buffer (16× the L3 here, so every byte comes from DRAM) with 1 and 2 threads,
 * 32-byte loads into four accumulators, best of 9 passes.
 *
 * Two page sizes: 4 KiB pages are like for like with wasm (engines map a wasm memory with
 * ordinary pages, and a wasm program cannot ask for huge ones); 2 MiB transparent huge pages
 * (`madvise`) show what native code gets beyond that, mostly from fewer TLB misses.
 * Returns GB/s, or undefined (with the reason printed) when gcc is missing.
 *
 * @module
 */

const SOURCE = `
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#include <sys/mman.h>
#define BYTES (512ul << 20)
static char *buf; static int nthreads; static volatile long long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void *reader(void *arg) {
  size_t id = (size_t)arg, n = BYTES / nthreads;
  const char *p = buf + id * n;
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i < n; i += 128) {
    a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(p + i)));
    b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
    c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
    d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
  }
  a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
  sink += _mm256_extract_epi64(a, 0) + _mm256_extract_epi64(a, 3);
  return 0;
}
int main(int argc, char **argv) {
  nthreads = atoi(argv[1]);
  buf = aligned_alloc(2u << 20, BYTES);
  madvise(buf, BYTES, atoi(argv[2]) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  memset(buf, 1, BYTES);
  double best = 0;
  for (int rep = 0; rep < 9; rep++) {
    pthread_t th[8]; double t0 = now();
    for (size_t i = 0; i < (size_t)nthreads; i++) pthread_create(&th[i], 0, reader, (void *)i);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], 0);
    double gbs = BYTES / (now() - t0) / 1e9; if (gbs > best) best = gbs;
  }
  printf("%.3f\\n", best); return 0;
}
`;

/** Native read bandwidth in GB/s, 1 and 2 threads. */
export interface NativeBandwidth {
  /** 1 thread. */
  t1: number;
  /** 2 threads. */
  t2: number;
}

/** A compiled probe: `measure()` runs it now (call it often: a shared machine drifts). */
export interface NativeProbe {
  /** Measures 1 and 2 threads, with 4 KiB pages (like wasm) or 2 MiB huge pages. */
  measure(huge?: boolean): Promise<NativeBandwidth>;
  /** Removes the binary. */
  dispose(): Promise<void>;
}

/** Compiles the probe; undefined (reason printed) without gcc or x86-64 AVX2. */
export async function nativeProbe(): Promise<NativeProbe | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "tandem-probe-" });
  const dispose = () => Deno.remove(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/probe.c`, SOURCE);
  const cc = await new Deno.Command("gcc", {
    args: ["-O3", "-march=native", "-pthread", "-o", `${dir}/probe`, `${dir}/probe.c`],
    stderr: "piped",
  }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  if (!cc.success) {
    console.log(`native probe unavailable: ${new TextDecoder().decode(cc.stderr).trim()}`);
    await dispose();
    return undefined;
  }
  const run = async (threads: number, huge: boolean) => {
    const out = await new Deno.Command(`${dir}/probe`, {
      args: [String(threads), huge ? "1" : "0"],
    }).output();
    return Number(new TextDecoder().decode(out.stdout));
  };
  return {
    measure: async (huge = false) => ({ t1: await run(1, huge), t2: await run(2, huge) }),
    dispose,
  };
}

/** Best of several measurements, figure by figure. */
export function bestOf(ms: NativeBandwidth[]): NativeBandwidth {
  return { t1: Math.max(...ms.map((m) => m.t1)), t2: Math.max(...ms.map((m) => m.t2)) };
}

/** Read bandwidth in GB/s for 1 and 2 threads (4 KiB pages), measured now. */
export async function nativeReadBandwidth(): Promise<NativeBandwidth | undefined> {
  const p = await nativeProbe();
  if (!p) return undefined;
  try {
    return await p.measure();
  } finally {
    await p.dispose();
  }
}
