/* findleaks case: lost blocks that glibc's own malloc state points into.
 *
 * glibc keeps its top chunk pointer and the heads of its bins in main_arena, in libc's writable
 * data. Those words hold chunk header addresses. A chunk header starts 16 B before the user
 * pointer and its first 8 bytes overlap the last 8 bytes of the chunk before it, so when a
 * block's size leaves fewer than 8 spare bytes in its chunk (size % 16 in 1..8: 24, 40, 1000,
 * 1016, ...), the next chunk's header address lies inside [block, block + size): read as a plain
 * root, libc's data then holds an interior pointer to the block. valgrind's allocator keeps its
 * state outside the program, so for valgrind (and LeakSanitizer) these blocks are lost.
 * With glibc, at exit (if the allocations below come out adjacent, which they do from a fresh
 * top chunk):
 *   a 1016 B block X followed by a freed 2000 B chunk: too big for tcache, the chunk sits in a
 *   bin whose head in main_arena points at its header = X + 1008;
 *   a 64 B block P pointing to a 1000 B block C followed by a freed 4000 B chunk: likewise,
 *   C + 992 is in main_arena;
 *   a 5000 B block Y carved last from the top chunk: main_arena's top = Y + 4992.
 * Kept (reachable): two 100 B guard blocks (in a global) that stop the freed chunks from
 * merging with the top chunk.
 * Lost: X 1016, P 64 and Y 5000 directly, C 1000 indirectly.
 * EXPECT: definitely 6080/3 indirectly 1000/1
 */
#include <stdlib.h>

#include "fl_common.h"

static void *g_guards[2];

/* Everything is allocated before anything is freed, so that no block is carved from a freed
   chunk: x | q1 | guard | p | c | q2 | guard, then q1 and q2 are freed. */
static FL_NOINLINE void lose_before_free_chunks(void) {
    char *x = malloc(1016);
    fl_fill(x, 1016);
    char *q1 = malloc(2000);
    fl_fill(q1, 2000);
    g_guards[0] = malloc(100);
    fl_fill(g_guards[0], 100);
    void **p = malloc(64);
    fl_fill(p, 64);
    p[2] = malloc(1000);
    fl_fill(p[2], 1000);
    char *q2 = malloc(4000);
    fl_fill(q2, 4000);
    g_guards[1] = malloc(100);
    fl_fill(g_guards[1], 100);
    free(q1);
    free(q2);
}

static FL_NOINLINE void lose_before_top(void) {
    char *y = malloc(5000);   /* larger than both free chunks: carved from the top chunk */
    fl_fill(y, 5000);
}

int main(void) {
    lose_before_free_chunks();
    lose_before_top();
    fl_scrub_stack();
    return 0;
}
