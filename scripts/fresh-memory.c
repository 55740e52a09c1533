/*
 * How much first touching fresh memory costs on this host, against touching it again: what a
 * restore pays to put a memory image into a new QEMU's RAM (QEMU asks for transparent huge pages,
 * as HUGE=1 does here). On the project's machines, themselves VMs whose freed memory is reported
 * to their hypervisor after about 2 s (virtio-balloon free page reporting), memory idle for longer
 * costs ~25 times as much to touch again (docs/benchmarks.md, "Where a resume's spread comes from").
 *
 *   cc -O2 -o /tmp/fresh-memory scripts/fresh-memory.c
 *   for s in 0.3 5 0.3 5; do sleep $s; HUGE=1 /tmp/fresh-memory; done
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double ms_between(struct timespec a, struct timespec b) {
  return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

int main(void) {
  size_t n = (size_t)256 << 20;
  char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  const char *huge = getenv("HUGE");
  if (huge != NULL && strcmp(huge, "1") == 0 && madvise(p, n, MADV_HUGEPAGE) != 0) {
    perror("madvise(MADV_HUGEPAGE)"); /* THP "never", or a kernel without it */
    return 1;
  }
  struct timespec t0, t1, t2;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  memset(p, 1, n);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  memset(p, 2, n);
  clock_gettime(CLOCK_MONOTONIC, &t2);
  printf("256 MiB: first touch %.0f ms, the same pages again %.0f ms\n", ms_between(t0, t1),
         ms_between(t1, t2));
  return p[n - 1] == 2 ? 0 : 1;
}
