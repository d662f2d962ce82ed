/* findleaks case: pointers kept only in global variables (.bss and .data).
 *
 * Kept (reachable):
 *   g_list (.bss) -> 5 list nodes of 32 B, each owning a 100 B buffer;
 *   g_table (.data: it has an initializer) -> [1] a 200 B block, [2] a 300 B block that
 *   points to a 50 B block.
 * Lost:
 *   a 72 B block whose only pointer is stored misaligned (offset 1 of a packed global):
 *   valgrind and leakscope read aligned words only, so nothing points to it: directly lost;
 *   a 48 B holder pointing to a 40 B and a 56 B block, once in g_table[3], then overwritten:
 *   the holder directly lost, its two children indirectly.
 * EXPECT: definitely 120/2 indirectly 96/2
 */
#include <stdlib.h>

#include "fl_common.h"

struct node {
    struct node *next;
    char *buf;
    char pad[16];
};

struct __attribute__((packed)) misaligned {
    char tag;
    void *ptr;
};

static struct node *g_list;                           /* .bss */
static int g_marker;
void *g_table[4] = {&g_marker, NULL, NULL, NULL};     /* .data */
static struct misaligned g_misaligned __attribute__((aligned(16)));

static FL_NOINLINE void keep_list(void) {
    for (int i = 0; i < 5; i++) {
        struct node *n = malloc(sizeof *n);
        fl_fill(n, sizeof *n);
        n->buf = malloc(100);
        fl_fill(n->buf, 100);
        n->next = g_list;
        g_list = n;
    }
}

static FL_NOINLINE void keep_table(void) {
    char *a = malloc(200);
    fl_fill(a, 200);
    void **b = malloc(300);
    fl_fill(b, 300);
    b[7] = malloc(50);
    fl_fill(b[7], 50);
    g_table[1] = a;
    g_table[2] = b;
}

static FL_NOINLINE void lose_misaligned(void) {
    void *p = malloc(72);
    fl_fill(p, 72);
    g_misaligned.tag = 'x';
    g_misaligned.ptr = p;
}

static FL_NOINLINE void lose_holder(void) {
    void **holder = malloc(48);
    fl_fill(holder, 48);
    holder[0] = malloc(40);
    fl_fill(holder[0], 40);
    holder[3] = malloc(56);
    fl_fill(holder[3], 56);
    g_table[3] = holder;
    g_table[3] = NULL;
}

int main(void) {
    keep_list();
    keep_table();
    lose_misaligned();
    lose_holder();
    fl_scrub_stack();
    return 0;
}
