/* findleaks case: pointers kept only in dynamically allocated TLS (a dlopen'ed library's
 * __thread variables: the blocks hang off each thread's DTV) and in a dlopen'ed library's data.
 * libfl_dtlslib.so (dtlslib_so.c) is loaded from the directory of this executable.
 *
 * Kept (reachable):
 *   main thread: slot 0 -> a 700 B block that points to a 70 B block; slot 1 -> a 12 B block;
 *   a helper thread blocked in pause(): its own slot 0 -> a 350 B block;
 *   the library's global fl_lib_global -> a 123 B block.
 * Lost:
 *   the 900 B block main's slot 2 held before it was cleared: directly;
 *   a 480 B block (pointing to a 48 B block) held only in the dynamic TLS of a thread that has
 *   ended (joined): 480 directly, 48 indirectly.
 * EXPECT: definitely 1380/2 indirectly 48/1
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "fl_common.h"

static void (*dtls_set)(int, void *);
static void *(*dtls_addr)(void);
static void (*lib_keep)(void *);
static void *volatile g_hand_live, *volatile g_hand_dead;

static FL_NOINLINE int load(void) {
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 64);
    if (n <= 0) return -1;
    path[n] = 0;
    char *slash = strrchr(path, '/');
    if (!slash) return -1;
    strcpy(slash + 1, "libfl_dtlslib.so");
    void *lib = dlopen(path, RTLD_NOW);
    if (!lib) return -1;
    dtls_set = (void (*)(int, void *))dlsym(lib, "fl_dtls_set");
    dtls_addr = (void *(*)(void))dlsym(lib, "fl_dtls_addr");
    lib_keep = (void (*)(void *))dlsym(lib, "fl_lib_keep");
    return dtls_set && dtls_addr && lib_keep ? 0 : -1;
}

/* The slots must not be in the static TLS block just below the thread pointer. */
static int in_static_tls(void) {
    uintptr_t tp = (uintptr_t)__builtin_thread_pointer(), a = (uintptr_t)dtls_addr();
    return a < tp + 4096 && a + 65536 > tp;
}

static void *holder(void *arg) {
    (void)arg;
    dtls_set(0, fl_take(&g_hand_live));
    fl_signal_ready();
    fl_block_forever();
    return NULL;
}

static void *short_lived(void *arg) {
    (void)arg;
    dtls_set(0, fl_take(&g_hand_dead));
    return NULL;
}

static FL_NOINLINE void keep_in_main(void) {
    void **a = malloc(700);
    fl_fill(a, 700);
    a[1] = malloc(70);
    fl_fill(a[1], 70);
    dtls_set(0, a);
    char *b = malloc(12);
    fl_fill(b, 12);
    dtls_set(1, b);
    char *c = malloc(900);
    fl_fill(c, 900);
    dtls_set(2, c);
    dtls_set(2, NULL);        /* the 900 B block is lost */
    char *g = malloc(123);
    fl_fill(g, 123);
    lib_keep(g);
}

static FL_NOINLINE void make_thread_blocks(void) {
    char *live = malloc(350);
    fl_fill(live, 350);
    g_hand_live = live;
    void **dead = malloc(480);
    fl_fill(dead, 480);
    dead[0] = malloc(48);
    fl_fill(dead[0], 48);
    g_hand_dead = dead;
}

int main(void) {
    if (load() != 0) {
        puts("dtls: cannot load libfl_dtlslib.so next to the executable");
        return 1;
    }
    keep_in_main();
    if (in_static_tls()) {
        puts("dtls: the library's TLS is in the static TLS block");
        return 1;
    }
    make_thread_blocks();
    fl_start_thread(holder);          /* first, so it does not reuse the dead thread's stack */
    fl_wait_ready(1);
    fl_run_thread_to_end(short_lived);
    fl_scrub_stack();
    return 0;
}
