/* findleaks case: pointers kept only in thread-local storage (static TLS, __thread).
 *
 * Kept (reachable):
 *   the main thread's tls_ptr -> a 128 B block that points to a 64 B block;
 *   the main thread's tls_rec.p (a field of a TLS struct) -> a 96 B block;
 *   a helper thread blocked in pause(): its own tls_ptr -> a 333 B block.
 * Lost:
 *   the 222 B block the main thread's tls_ptr held before it was overwritten: directly;
 *   a 444 B block pointing to a 44 B block, held only in the tls_ptr of a thread that has
 *   ended (joined): 444 directly, 44 indirectly.
 * EXPECT: definitely 666/2 indirectly 44/1
 */
#include <stdlib.h>

#include "fl_common.h"

static __thread void *tls_ptr;
static __thread struct {
    long tag;
    void *p;
    char pad[40];
} tls_rec;

static void *volatile g_hand_live, *volatile g_hand_dead;

static void *holder(void *arg) {
    (void)arg;
    tls_ptr = fl_take(&g_hand_live);
    fl_signal_ready();
    fl_block_forever();
    return NULL;
}

static void *short_lived(void *arg) {
    (void)arg;
    tls_ptr = fl_take(&g_hand_dead);
    return NULL;
}

static FL_NOINLINE void keep_in_main_tls(void) {
    char *old = malloc(222);
    fl_fill(old, 222);
    tls_ptr = old;
    void **a = malloc(128);
    fl_fill(a, 128);
    a[3] = malloc(64);
    fl_fill(a[3], 64);
    tls_ptr = a;              /* the 222 B block is lost */
    char *b = malloc(96);
    fl_fill(b, 96);
    tls_rec.tag = 7;
    tls_rec.p = b;
}

static FL_NOINLINE void make_live(void) {
    char *p = malloc(333);
    fl_fill(p, 333);
    g_hand_live = p;
}

static FL_NOINLINE void make_dead(void) {
    void **p = malloc(444);
    fl_fill(p, 444);
    p[0] = malloc(44);
    fl_fill(p[0], 44);
    g_hand_dead = p;
}

int main(void) {
    keep_in_main_tls();
    make_live();
    fl_start_thread(holder);          /* first, so it does not reuse the dead thread's stack */
    fl_wait_ready(1);
    make_dead();
    fl_run_thread_to_end(short_lived);
    fl_scrub_stack();
    return 0;
}
