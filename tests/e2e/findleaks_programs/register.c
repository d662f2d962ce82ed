/* findleaks case: pointers kept only in a live thread's registers.
 *
 * Kept (reachable): a helper thread loads two pointers into r12 and rbx in inline asm, clears
 *   the globals they came from and loops on the pause system call, so the registers are their
 *   only holders: r12 -> a 2000 B block that points to a 30 B block, rbx -> a 160 B block.
 * Lost: three unrelated 50 B blocks (directly); an 80 B block pointing to a 20 B block
 *   (80 directly, 20 indirectly).
 * EXPECT: definitely 230/4 indirectly 20/1
 */
#include <stdlib.h>

#include "fl_common.h"

static void *volatile g_hand_r12, *volatile g_hand_rbx;

static void *holder(void *arg) {
    (void)arg;
    __asm__ volatile(
        "mov %0, %%r12\n\t"
        "movq $0, %0\n\t"
        "mov %1, %%rbx\n\t"
        "movq $0, %1\n\t"
        "lock incl %2\n\t"
        "1:\n\t"
        "mov $34, %%eax\n\t"      /* SYS_pause */
        "syscall\n\t"
        "jmp 1b\n\t"
        : "+m"(g_hand_r12), "+m"(g_hand_rbx), "+m"(fl_ready)
        :
        : "rax", "rcx", "r11", "r12", "rbx", "memory");
    return NULL;
}

static FL_NOINLINE void make_kept(void) {
    void **a = malloc(2000);
    fl_fill(a, 2000);
    a[100] = malloc(30);
    fl_fill(a[100], 30);
    g_hand_r12 = a;
    char *b = malloc(160);
    fl_fill(b, 160);
    g_hand_rbx = b;
}

static FL_NOINLINE void lose_blocks(void) {
    for (int i = 0; i < 3; i++) fl_fill(malloc(50), 50);
    void **p = malloc(80);
    fl_fill(p, 80);
    p[1] = malloc(20);
    fl_fill(p[1], 20);
}

int main(void) {
    make_kept();
    fl_start_thread(holder);
    fl_wait_ready(1);
    lose_blocks();
    fl_scrub_stack();
    return 0;
}
