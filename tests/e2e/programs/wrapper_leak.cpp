// e2e target: every allocation goes through one wrapper (like bash's xmalloc or glib's
// g_malloc), called from six leaking functions with identical frames, in turn. The malloc call
// inside the wrapper then has the same return address and the same stack pointer for all six
// call chains: the unwinder's cache must tell them apart (and stay fast).
// Usage: e2e_wrapper_leak [N]   (default 2000 rounds). Prints "kept K", exits 0.
#include <cstdio>
#include <cstdlib>
#include <cstring>

static void** g_kept;
static int g_n_kept;

__attribute__((noinline)) void* xmalloc(size_t n) {
  void* p = malloc(n);
  if (!p) abort();
  memset(p, 0, n);
  return p;
}

#define LEAKER(NAME, SIZE)                                                    \
  __attribute__((noinline)) void NAME(int i) {                                \
    void* p = xmalloc(SIZE);                                                  \
    void* tmp = xmalloc(SIZE + 1000); /* freed at once */                     \
    free(tmp);                                                                \
    if (i >= 0) g_kept[g_n_kept++] = p;                                       \
    asm volatile("" ::: "memory");                                            \
  }
LEAKER(leak_a, 101)  // WRAP-A
LEAKER(leak_b, 102)  // WRAP-B
LEAKER(leak_c, 103)  // WRAP-C
LEAKER(leak_d, 104)  // WRAP-D
LEAKER(leak_e, 105)  // WRAP-E
LEAKER(leak_f, 106)  // WRAP-F

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  g_kept = static_cast<void**>(malloc(sizeof(void*) * 6 * static_cast<size_t>(n)));
  void (*leakers[6])(int) = {leak_a, leak_b, leak_c, leak_d, leak_e, leak_f};
  for (int i = 0; i < n; ++i)
    for (auto* f : leakers) f(i);
  printf("kept %d\n", g_n_kept);
  return 0;
}
