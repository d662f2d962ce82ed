/* findleaks case: aligned_alloc blocks, and the older memalign and valloc.
 *
 * Kept (reachable): g_kept = aligned_alloc(128, 512); a static local holds memalign(64, 100).
 * Lost:
 *   aligned_alloc(64, 192) pointing to aligned_alloc(4096, 4096): 192 directly, 4096 indirectly;
 *   memalign(32, 72): 72 directly;
 *   valloc(300): 300 directly.
 * (pvalloc is left out: valgrind 3.19 aborts the program on a call to it.)
 * EXPECT: definitely 564/3 indirectly 4096/1
 */
#include <malloc.h>
#include <stdlib.h>

#include "fl_common.h"

static void *g_kept;

static FL_NOINLINE void keep_some(void) {
    static void *kept_old_style;
    g_kept = aligned_alloc(128, 512);
    fl_fill(g_kept, 512);
    kept_old_style = memalign(64, 100);
    fl_fill(kept_old_style, 100);
}

static FL_NOINLINE void lose_parent(void) {
    void **p = aligned_alloc(64, 192);
    fl_fill(p, 192);
    p[5] = aligned_alloc(4096, 4096);
    fl_fill(p[5], 4096);
}

static FL_NOINLINE void lose_old_style(void) {
    void *m = memalign(32, 72);
    fl_fill(m, 72);
    void *v = valloc(300);
    fl_fill(v, 300);
}

int main(void) {
    keep_some();
    lose_parent();
    lose_old_style();
    fl_scrub_stack();
    return 0;
}
