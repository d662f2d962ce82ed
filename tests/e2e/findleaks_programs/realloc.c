/* findleaks case: blocks made or resized by realloc and reallocarray.
 *
 * Kept (reachable): g_buf, realloc(NULL, 100) grown to 5000 then shrunk to 3000.
 * Lost:
 *   a 16 B block grown by realloc to 4096 B: 4096 directly;
 *   a 2000 B block shrunk by realloc to 700 B: 700 directly;
 *   an array of pointers grown by realloc one slot at a time to 10 slots (80 B), each slot
 *   pointing to a 32 B block: 80 directly, 320 (10) indirectly;
 *   reallocarray(NULL, 6, 40) grown by reallocarray to 12 x 40 = 480 B, pointing to a 56 B block
 *   made by realloc(NULL, 56): 480 directly, 56 indirectly.
 * EXPECT: definitely 5356/4 indirectly 376/11
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "fl_common.h"

static char *g_buf;

static FL_NOINLINE void keep_resized(void) {
    g_buf = realloc(NULL, 100);
    fl_fill(g_buf, 100);
    g_buf = realloc(g_buf, 5000);
    fl_fill(g_buf, 5000);
    g_buf = realloc(g_buf, 3000);
}

static FL_NOINLINE void lose_grown(void) {
    char *p = malloc(16);
    fl_fill(p, 16);
    p = realloc(p, 4096);
    fl_fill(p, 4096);
}

static FL_NOINLINE void lose_shrunk(void) {
    char *p = malloc(2000);
    fl_fill(p, 2000);
    p = realloc(p, 700);
}

static FL_NOINLINE void lose_grown_array(void) {
    void **arr = NULL;
    for (int n = 1; n <= 10; n++) {
        arr = realloc(arr, (size_t)n * sizeof *arr);
        arr[n - 1] = malloc(32);
        fl_fill(arr[n - 1], 32);
    }
}

static FL_NOINLINE void lose_reallocarray(void) {
    void **p = reallocarray(NULL, 6, 40);
    fl_fill(p, 6 * 40);
    p = reallocarray(p, 12, 40);
    fl_fill(p, 12 * 40);
    p[4] = realloc(NULL, 56);
    fl_fill(p[4], 56);
}

int main(void) {
    keep_resized();
    lose_grown();
    lose_shrunk();
    lose_grown_array();
    lose_reallocarray();
    fl_scrub_stack();
    return 0;
}
