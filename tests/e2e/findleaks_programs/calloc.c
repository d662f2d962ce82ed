/* findleaks case: calloc blocks (zeroed, so every word starts as a defined 0).
 *
 * Kept (reachable): g_arr = calloc(10, 100) pointing to three calloc(1, 64) blocks.
 * Lost:
 *   calloc(4, 250) = 1000 B pointing to two calloc(3, 16) = 48 B blocks: 1000 directly,
 *   96 (2) indirectly;
 *   calloc(1, 300000) (big enough for glibc to mmap it) pointing to a calloc(1, 24) block:
 *   300000 directly, 24 indirectly.
 * EXPECT: definitely 301000/2 indirectly 120/3
 */
#include <stdlib.h>

#include "fl_common.h"

static void **g_arr;

static FL_NOINLINE void keep_array(void) {
    g_arr = calloc(10, 100);
    for (int i = 0; i < 3; i++) g_arr[i * 4] = calloc(1, 64);
}

static FL_NOINLINE void lose_array(void) {
    void **p = calloc(4, 250);
    p[1] = calloc(3, 16);
    p[100] = calloc(3, 16);
}

static FL_NOINLINE void lose_big(void) {
    void **p = calloc(1, 300000);
    p[30000] = calloc(1, 24);
}

int main(void) {
    keep_array();
    lose_array();
    lose_big();
    fl_scrub_stack();
    return 0;
}
