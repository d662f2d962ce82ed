/* findleaks case: lost cycles, and valgrind's clique rule.
 *
 * valgrind visits lost blocks in address order; each one not yet claimed leads a clique and
 * claims every unclaimed lost block it reaches, without going through blocks an earlier clique
 * claimed (an earlier leader it reaches directly is absorbed with its clique). Leaders are
 * "definitely lost", claimed blocks "indirectly lost".
 * Kept (reachable): a ring of three 40 B blocks in a global.
 * Lost (no way in, so one leader each; members of equal size, so the bytes do not depend on
 * which member has the lowest address):
 *   a 64 B block pointing to itself: 64 directly;
 *   two 48 B blocks pointing to each other: 48 directly, 48 indirectly;
 *   a ring of five 32 B blocks: 32 directly, 128 (4) indirectly;
 *   a doubly linked list of ten 24 B nodes: 24 directly, 216 (9) indirectly.
 * Lost, four 40 B blocks each, roles given at run time by address rank k0 < k1 < k2 < k3:
 *   (a) cycle k0->k1->k2->k0, entry k3->k1: k0 leads {k0,k1,k2}; k3 finds k1 claimed, so it is
 *       a second leader: 80 (2) directly, 80 (2) indirectly;
 *   (b) entry k0->k2, cycle k1->k2->k3->k1: k0 comes first and claims all: 40 directly,
 *       120 (3) indirectly;
 *   (c) entry k1->k0, cycle k0->k2->k3->k0: k0 leads {k0,k2,k3}, then k1 reaches the leader k0
 *       itself and absorbs its clique: 40 directly, 120 (3) indirectly.
 * EXPECT: definitely 328/8 indirectly 712/22
 */
#include <stdlib.h>

#include "fl_common.h"

static void **g_kept_ring;

static FL_NOINLINE void *block(size_t n) {
    void *p = malloc(n);
    fl_fill(p, n);
    return p;
}

/* ring of n blocks of size sz: each block's word `slot` points to the next */
static FL_NOINLINE void **ring(int n, size_t sz, int slot) {
    void **first = block(sz), **prev = first;
    for (int i = 1; i < n; i++) {
        void **b = block(sz);
        prev[slot] = b;
        prev = b;
    }
    prev[slot] = first;
    return first;
}

static FL_NOINLINE void keep_ring(void) { g_kept_ring = ring(3, 40, 1); }

static FL_NOINLINE void lose_self_loop(void) {
    void **b = block(64);
    b[3] = b;
}

static FL_NOINLINE void lose_pair(void) { ring(2, 48, 0); }

static FL_NOINLINE void lose_ring(void) { ring(5, 32, 2); }

static FL_NOINLINE void lose_doubly_linked(void) {
    void **prev = NULL;
    for (int i = 0; i < 10; i++) {
        void **n = block(24);
        n[0] = NULL;     /* next */
        n[1] = prev;     /* prev */
        if (prev) prev[0] = n;
        prev = n;
    }
}

static FL_NOINLINE void four_by_address(void **k) {
    for (int i = 0; i < 4; i++) k[i] = block(40);
    fl_sort_ptrs(k, 4);
}

static FL_NOINLINE void lose_entry_into_claimed_cycle(void) {   /* (a) */
    void *k[4];
    four_by_address(k);
    ((void **)k[0])[0] = k[1];
    ((void **)k[1])[0] = k[2];
    ((void **)k[2])[0] = k[0];
    ((void **)k[3])[0] = k[1];
}

static FL_NOINLINE void lose_entry_first(void) {                /* (b) */
    void *k[4];
    four_by_address(k);
    ((void **)k[0])[0] = k[2];
    ((void **)k[1])[0] = k[2];
    ((void **)k[2])[0] = k[3];
    ((void **)k[3])[0] = k[1];
}

static FL_NOINLINE void lose_entry_to_leader(void) {            /* (c) */
    void *k[4];
    four_by_address(k);
    ((void **)k[1])[0] = k[0];
    ((void **)k[0])[0] = k[2];
    ((void **)k[2])[0] = k[3];
    ((void **)k[3])[0] = k[0];
}

int main(void) {
    keep_ring();
    lose_self_loop();
    lose_pair();
    lose_ring();
    lose_doubly_linked();
    lose_entry_into_claimed_cycle();
    lose_entry_first();
    lose_entry_to_leader();
    fl_scrub_stack();
    return 0;
}
