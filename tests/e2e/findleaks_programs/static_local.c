/* findleaks case: pointers kept only in static local variables.
 *
 * Kept (reachable):
 *   cache() keeps a 4096 B block in a static local;
 *   registry() keeps, in a static local list head, 3 nodes of 64 B, each owning a 128 B buffer.
 * Lost:
 *   a list of 4 nodes of 64 B whose head pointer was dropped: the head directly lost,
 *   the other 3 indirectly;
 *   the 500 B block a static local held before reset_slot() replaced it (the new 500 B block
 *   is kept): directly lost.
 * EXPECT: definitely 564/2 indirectly 192/3
 */
#include <stdlib.h>

#include "fl_common.h"

struct node {
    struct node *next;
    char *buf;
    char pad[48];
};

static FL_NOINLINE int cache(void) {
    static char *block;
    if (!block) {
        block = malloc(4096);
        fl_fill(block, 4096);
    }
    return block[0];
}

static FL_NOINLINE void registry(int add) {
    static struct node *head;
    for (int i = 0; i < add; i++) {
        struct node *n = malloc(sizeof *n);
        fl_fill(n, sizeof *n);
        n->buf = malloc(128);
        fl_fill(n->buf, 128);
        n->next = head;
        head = n;
    }
}

static FL_NOINLINE void reset_slot(void) {
    static char *slot;
    slot = malloc(500);
    fl_fill(slot, 500);
    slot = malloc(500);   /* the first one is lost */
    fl_fill(slot, 500);
}

static FL_NOINLINE void lose_list(void) {
    struct node *head = NULL;
    for (int i = 0; i < 4; i++) {
        struct node *n = malloc(sizeof *n);
        fl_fill(n, sizeof *n);
        n->buf = NULL;
        n->next = head;
        head = n;
    }
}

int main(void) {
    cache();
    registry(3);
    reset_slot();
    lose_list();
    fl_scrub_stack();
    return 0;
}
