/* findleaks case: posix_memalign blocks.
 *
 * Kept (reachable): g_kept, 700 B aligned to 256.
 * Lost:
 *   1000 B aligned to 64, pointing to 100 B aligned to 4096 and 24 B aligned to 32:
 *   1000 directly, 124 (2) indirectly;
 *   200000 B aligned to 65536: 200000 directly.
 * EXPECT: definitely 201000/2 indirectly 124/2
 */
#include <stdlib.h>

#include "fl_common.h"

static void *g_kept;

static FL_NOINLINE void *aligned(size_t align, size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0) abort();
    fl_fill(p, size);
    return p;
}

static FL_NOINLINE void keep_one(void) { g_kept = aligned(256, 700); }

static FL_NOINLINE void lose_parent(void) {
    void **p = aligned(64, 1000);
    p[3] = aligned(4096, 100);
    p[77] = aligned(32, 24);
}

static FL_NOINLINE void lose_big(void) { aligned(65536, 200000); }

int main(void) {
    keep_one();
    lose_parent();
    lose_big();
    fl_scrub_stack();
    return 0;
}
