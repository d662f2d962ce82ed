/* findleaks case: lost trees.
 *
 * Kept (reachable): a 7-node tree (32 B nodes, each owning a 16 B payload) in a global.
 * Lost:
 *   a 15-node binary tree without parent links, 32 B nodes, node i (0..14) owning a payload of
 *   16 * (i + 1) B: the root directly, 14 nodes (448 B) and 15 payloads (1920 B) indirectly;
 *   a 7-node tree with parent links (32 B nodes, no payload): every node reaches every other,
 *   so one of them (the lowest address) is directly lost and 6 (192 B) indirectly.
 * EXPECT: definitely 64/2 indirectly 2560/35
 */
#include <stdlib.h>

#include "fl_common.h"

struct tnode {
    struct tnode *left, *right, *parent;
    char *payload;
};

static struct tnode *g_kept_tree;

static FL_NOINLINE struct tnode *build(int depth, int *counter, int payload_step, struct tnode *parent) {
    if (depth == 0) return NULL;
    struct tnode *n = malloc(sizeof *n);
    fl_fill(n, sizeof *n);
    int i = (*counter)++;
    n->parent = parent;
    if (payload_step) {
        n->payload = malloc((size_t)payload_step * (size_t)(i + 1));
        fl_fill(n->payload, (size_t)payload_step * (size_t)(i + 1));
    } else {
        n->payload = NULL;
    }
    n->left = build(depth - 1, counter, payload_step, n);
    n->right = build(depth - 1, counter, payload_step, n);
    return n;
}

static FL_NOINLINE void keep_tree(void) {
    int counter = 0;
    struct tnode *t = build(3, &counter, 0, NULL);
    /* every kept node owns a 16 B payload */
    struct tnode *stack[8];
    int top = 0;
    stack[top++] = t;
    while (top) {
        struct tnode *n = stack[--top];
        n->payload = malloc(16);
        fl_fill(n->payload, 16);
        if (n->left) stack[top++] = n->left;
        if (n->right) stack[top++] = n->right;
    }
    g_kept_tree = t;
}

static FL_NOINLINE void lose_tree_without_parents(void) {
    int counter = 0;
    struct tnode *t = build(4, &counter, 16, NULL);
    /* no parent links: a pure tree */
    struct tnode *stack[16];
    int top = 0;
    stack[top++] = t;
    while (top) {
        struct tnode *n = stack[--top];
        n->parent = NULL;
        if (n->left) stack[top++] = n->left;
        if (n->right) stack[top++] = n->right;
    }
}

static FL_NOINLINE void lose_tree_with_parents(void) {
    int counter = 0;
    build(3, &counter, 0, NULL);
}

int main(void) {
    keep_tree();
    lose_tree_without_parents();
    lose_tree_with_parents();
    fl_scrub_stack();
    return 0;
}
