/* findleaks case: interior pointers.
 *
 * A pointer anywhere inside [start, start + size) of a block points to it (LeakSanitizer's rule;
 * valgrind calls blocks reached only that way "possibly lost", which is neither definitely nor
 * indirectly lost); one past the end or before the start points to nothing.
 * Kept (valgrind: possibly lost, leakscope: reachable):
 *   g_mid = a 256 B block + 100, and that block points to a 64 B block;
 *   g_last = a 48 B block + 47 (its last byte).
 * Lost:
 *   an 80 B block whose only "pointer" is g_end = block + 80 (one past its end): directly;
 *   a 32 B block whose only "pointer" is g_before = block - 8: directly;
 *   a 40 B block holding an interior pointer (offset 60) into a 120 B block: 40 directly,
 *   120 indirectly (inside a lost clique, interior pointers count for valgrind too).
 * EXPECT: definitely 152/3 indirectly 120/1
 */
#include <stdlib.h>

#include "fl_common.h"

static uintptr_t g_mid, g_last, g_end, g_before;

static FL_NOINLINE void keep_interior(void) {
    void **a = malloc(256);
    fl_fill(a, 256);
    a[0] = malloc(64);
    fl_fill(a[0], 64);
    g_mid = (uintptr_t)a + 100;
    char *b = malloc(48);
    fl_fill(b, 48);
    g_last = (uintptr_t)b + 47;
}

static FL_NOINLINE void lose_with_outside_pointers(void) {
    char *c = malloc(80);
    fl_fill(c, 80);
    g_end = (uintptr_t)c + 80;
    char *d = malloc(32);
    fl_fill(d, 32);
    g_before = (uintptr_t)d - 8;
}

static FL_NOINLINE void lose_interior_chain(void) {
    uintptr_t *e = malloc(40);
    fl_fill(e, 40);
    char *f = malloc(120);
    fl_fill(f, 120);
    e[1] = (uintptr_t)f + 60;
}

int main(void) {
    keep_interior();
    lose_with_outside_pointers();
    lose_interior_chain();
    fl_scrub_stack();
    return 0;
}
