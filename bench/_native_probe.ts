/**
 * The physical ceiling of the kernel bench: a tiny C read-bandwidth probe, compiled on this
 * machine at bench time with gcc (never committed as a binary), reading a 256 MiB buffer with
 * 1 and 2 threads. Returns GB/s, or undefined (with the reason printed) when gcc is missing.
 *
 * @module
 */

const SOURCE = `
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define BYTES (256u << 20)
static uint64_t *buf; static int nthreads; static volatile uint64_t sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void *reader(void *arg) {
  size_t id = (size_t)arg, n = BYTES / 8 / nthreads;
  const uint64_t *p = buf + id * n; uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < n; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
  sink += s0 + s1 + s2 + s3; return 0;
}
int main(int argc, char **argv) {
  nthreads = atoi(argv[1]); buf = aligned_alloc(64, BYTES);
  for (size_t i = 0; i < BYTES / 8; i++) buf[i] = i;
  double best = 0;
  for (int rep = 0; rep < 7; rep++) {
    pthread_t th[8]; double t0 = now();
    for (size_t i = 0; i < (size_t)nthreads; i++) pthread_create(&th[i], 0, reader, (void *)i);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], 0);
    double gbs = BYTES / (now() - t0) / 1e9; if (gbs > best) best = gbs;
  }
  printf("%.3f\\n", best); return 0;
}
`;

/** Read bandwidth in GB/s for 1 and 2 threads, measured now. */
export async function nativeReadBandwidth(): Promise<{ t1: number; t2: number } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "tandem-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.c`, SOURCE);
    const cc = await new Deno.Command("gcc", {
      args: ["-O3", "-march=native", "-pthread", "-o", `${dir}/probe`, `${dir}/probe.c`],
      stderr: "piped",
    }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
    if (!cc.success) {
      console.log(`native probe unavailable: ${new TextDecoder().decode(cc.stderr).trim()}`);
      return undefined;
    }
    const run = async (threads: number) => {
      const out = await new Deno.Command(`${dir}/probe`, { args: [String(threads)] }).output();
      return Number(new TextDecoder().decode(out.stdout));
    };
    return { t1: await run(1), t2: await run(2) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
