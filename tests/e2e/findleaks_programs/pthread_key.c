/* findleaks case: pointers kept only as pthread_setspecific values.
 *
 * glibc keeps the values of the first 32 keys in the thread descriptor and those of later keys
 * in second-level arrays it callocs. No key has a destructor.
 * Kept (reachable):
 *   main thread: key_low (index < 32) -> a 180 B block; key_high (index >= 32) -> a 260 B block
 *   that points to a 20 B block;
 *   a helper thread blocked in pause(): key_low -> a 90 B block.
 * Lost:
 *   the 111 B block (pointing to an 11 B block) that main's key_low held before it was
 *   replaced: 111 directly, 11 indirectly;
 *   the values of a thread that has ended (glibc clears them at thread exit): key_low -> 55 B,
 *   key_high -> 66 B, both directly.
 * EXPECT: definitely 232/3 indirectly 11/1
 */
#include <stdio.h>
#include <stdlib.h>

#include "fl_common.h"

static pthread_key_t key_low, key_high;
static void *volatile g_hand_live, *volatile g_hand_dead_low, *volatile g_hand_dead_high;

static void *holder(void *arg) {
    (void)arg;
    pthread_setspecific(key_low, fl_take(&g_hand_live));
    fl_signal_ready();
    fl_block_forever();
    return NULL;
}

static void *short_lived(void *arg) {
    (void)arg;
    pthread_setspecific(key_low, fl_take(&g_hand_dead_low));
    pthread_setspecific(key_high, fl_take(&g_hand_dead_high));
    return NULL;
}

static FL_NOINLINE int make_keys(void) {
    if (pthread_key_create(&key_low, NULL) != 0 || key_low >= 32) return -1;
    pthread_key_t k;
    do {
        if (pthread_key_create(&k, NULL) != 0) return -1;
    } while (k < 40);
    key_high = k;
    return 0;
}

static FL_NOINLINE void keep_in_main_keys(void) {
    void **old = malloc(111);
    fl_fill(old, 111);
    old[2] = malloc(11);
    fl_fill(old[2], 11);
    pthread_setspecific(key_low, old);
    char *a = malloc(180);
    fl_fill(a, 180);
    pthread_setspecific(key_low, a);      /* the 111 B block is lost */
    void **b = malloc(260);
    fl_fill(b, 260);
    b[5] = malloc(20);
    fl_fill(b[5], 20);
    pthread_setspecific(key_high, b);
}

static FL_NOINLINE void make_thread_values(void) {
    char *live = malloc(90);
    fl_fill(live, 90);
    g_hand_live = live;
    char *low = malloc(55);
    fl_fill(low, 55);
    g_hand_dead_low = low;
    char *high = malloc(66);
    fl_fill(high, 66);
    g_hand_dead_high = high;
}

int main(void) {
    if (make_keys() != 0) {
        puts("pthread_key: unexpected key numbers");
        return 1;
    }
    keep_in_main_keys();
    make_thread_values();
    fl_start_thread(holder);
    fl_wait_ready(1);
    fl_run_thread_to_end(short_lived);
    fl_scrub_stack();
    return 0;
}
