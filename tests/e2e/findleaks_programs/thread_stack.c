/* findleaks case: pointers kept only on a live thread's stack.
 *
 * Kept (reachable): a helper thread blocked in pause() holds, in volatile locals of two of its
 *   frames, a 512 B block that points to two 100 B blocks, and a 256 B block.
 * Lost:
 *   a 300 B block pointing to a 700 B block, dropped by main: 300 directly, 700 indirectly;
 *   a 64 B block that was held only in a local of a thread that has ended (joined): a dead
 *   thread's stack is no root (valgrind stops reading it when the thread exits).
 * EXPECT: definitely 364/2 indirectly 700/1
 */
#include <stdlib.h>

#include "fl_common.h"

static void *volatile g_hand_outer, *volatile g_hand_inner, *volatile g_hand_dead;

static FL_NOINLINE void hold_inner(void) {
    void *volatile keep = fl_take(&g_hand_inner);
    fl_signal_ready();
    fl_block_forever();
    (void)keep;
}

static void *holder(void *arg) {
    (void)arg;
    void *volatile keep = fl_take(&g_hand_outer);
    hold_inner();
    return keep;
}

static void *short_lived(void *arg) {
    (void)arg;
    void *volatile keep = fl_take(&g_hand_dead);
    (void)keep;
    return NULL;
}

static FL_NOINLINE void make_kept(void) {
    void **big = malloc(512);
    fl_fill(big, 512);
    big[0] = malloc(100);
    fl_fill(big[0], 100);
    big[9] = malloc(100);
    fl_fill(big[9], 100);
    g_hand_outer = big;
    char *small = malloc(256);
    fl_fill(small, 256);
    g_hand_inner = small;
}

static FL_NOINLINE void make_dead_held(void) {
    char *p = malloc(64);
    fl_fill(p, 64);
    g_hand_dead = p;
}

static FL_NOINLINE void lose_pair(void) {
    void **p = malloc(300);
    fl_fill(p, 300);
    p[2] = malloc(700);
    fl_fill(p[2], 700);
}

int main(void) {
    make_kept();
    fl_start_thread(holder);          /* first, so it does not reuse the dead thread's stack */
    fl_wait_ready(1);
    make_dead_held();
    fl_run_thread_to_end(short_lived);
    lose_pair();
    fl_scrub_stack();
    return 0;
}
