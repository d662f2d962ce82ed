/* Helpers shared by the findleaks test programs (tests/e2e/test_findleaks_valgrind.py runs each
 * under valgrind memcheck, the oracle, and under `leakscope run --findleaks`).
 *
 * A program's answer must not depend on its run, so:
 *  - blocks are allocated and dropped in noinline functions that return; afterwards main calls
 *    fl_scrub_stack() so that no stale copy of a dropped pointer survives in a dead stack slot
 *    (valgrind never reads below the stack pointer, leakscope reads from it minus the red zone);
 *  - main keeps no pointer to a lost block in its own locals and returns (no exit());
 *  - a block that a helper thread must keep is handed over through a global slot that the
 *    thread clears (fl_take), so the thread is its only holder;
 *  - every block is filled (fl_fill) before its pointer fields are set, so no stale bytes glibc
 *    left in it can look like a pointer (valgrind ignores undefined bytes, leakscope cannot);
 *  - lost structures are built so that valgrind's clique rule gives the same leaders whatever
 *    addresses the allocator hands out (a cycle with no way in has members of equal size), or
 *    roles are given by address rank at run time (fl_sort_ptrs).
 * Each program's header comment documents what is kept and lost, and a line
 *   EXPECT: definitely BYTES/BLOCKS indirectly BYTES/BLOCKS
 * that the test checks against valgrind before comparing leakscope with valgrind.
 */
#ifndef FL_COMMON_H
#define FL_COMMON_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define FL_NOINLINE __attribute__((noinline))
#define FL_UNUSED __attribute__((unused))

/* Overwrites 64 KiB of stack below the caller's frame, where the functions it called before
   kept their locals. */
static FL_NOINLINE FL_UNUSED void fl_scrub_stack(void) {
    volatile char area[65536];
    for (size_t i = 0; i < sizeof area; i++) area[i] = 0;
}

/* A byte pattern that is never a user-space pointer (0xa5a5a5a5a5a5a5a5 is not canonical). */
static FL_UNUSED void fl_fill(void *p, size_t n) { memset(p, 0xa5, n); }

/* Hand-over to helper threads: the thread takes the pointer and clears the slot. */
static FL_UNUSED void *fl_take(void *volatile *slot) {
    void *p = *slot;
    *slot = NULL;
    return p;
}

static volatile int fl_ready;  /* helper threads that have taken what they keep */

static FL_UNUSED void fl_signal_ready(void) { __atomic_add_fetch(&fl_ready, 1, __ATOMIC_SEQ_CST); }

static FL_UNUSED void fl_wait_ready(int n) {
    while (__atomic_load_n(&fl_ready, __ATOMIC_SEQ_CST) < n) usleep(1000);
}

/* A helper thread that must keep its stack, registers and TLS until the process exits blocks
   here; main returns meanwhile (exit_group ends it). */
static FL_NOINLINE FL_UNUSED void fl_block_forever(void) {
    for (;;) pause();
}

/* Starts a detached thread. */
static FL_UNUSED void fl_start_thread(void *(*fn)(void *)) {
    pthread_t t;
    pthread_create(&t, NULL, fn, NULL);
    pthread_detach(t);
}

/* Runs a thread to its end (its stack, TLS and keys are no root afterwards). */
static FL_UNUSED void fl_run_thread_to_end(void *(*fn)(void *)) {
    pthread_t t;
    pthread_create(&t, NULL, fn, NULL);
    pthread_join(t, NULL);
}

/* Sorts n pointers by address, so a program can give roles by address rank. */
static FL_UNUSED void fl_sort_ptrs(void **v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && (uintptr_t)v[j - 1] > (uintptr_t)v[j]; j--) {
            void *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

#endif
