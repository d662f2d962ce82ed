// findleaks case: several kinds of lost blocks next to reachable ones.
//
// Kept (reachable): a new'd std::vector<Item*> of 10 Items in a global; a function-local static
//   std::map; a 4096 B malloc block in a global pointing to a 100 B block; new Widget[3] held by
//   its (interior) element pointer.
// Lost:
//   a 1000 B malloc block: 1000 directly;
//   an Item (48 B, new) whose std::string name is 40 chars long (a 41 B buffer): 48 directly,
//   41 indirectly;
//   a 300000 B malloc block (glibc mmaps it) pointing to a 128 B block: 300000 directly,
//   128 indirectly;
//   a new'd std::list<long> (24 B) with 5 nodes (24 B each): list and nodes form a cycle of
//   equal-sized blocks, so 24 directly, 120 (5) indirectly;
//   a 16 B block realloc'ed to 4000 B: 4000 directly;
//   calloc(10, 12): 120 directly;
//   new Widget[3] (16 B Widgets with a destructor: a 56 B block with its count): 56 directly;
//   two 72 B blocks pointing to each other: 72 directly, 72 indirectly.
// EXPECT: definitely 305320/8 indirectly 361/8
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <string>
#include <vector>

#include "fl_common.h"

namespace app {

struct Item {
    long id;
    std::string name;
    long extra;
};

struct Widget {
    long id = 0;
    long weight = 0;
    ~Widget() { id = -1; }
};

std::vector<Item*>* g_items;
void** g_buffer;
Widget* g_widgets;

__attribute__((noinline)) std::map<int, long>& registry() {
    static auto* r = new std::map<int, long>();
    return *r;
}

__attribute__((noinline)) void keep_things() {
    g_items = new std::vector<Item*>();
    g_items->reserve(10);
    for (int i = 0; i < 10; i++)
        g_items->push_back(new Item{i, "kept-item-name-" + std::to_string(i) + "-long-enough", 0});
    for (int i = 0; i < 5; i++) registry()[i] = i * 10;
    g_buffer = static_cast<void**>(std::malloc(4096));
    fl_fill(g_buffer, 4096);
    g_buffer[10] = std::malloc(100);
    fl_fill(g_buffer[10], 100);
    g_widgets = new Widget[3];
}

__attribute__((noinline)) void lose_plain() {
    fl_fill(std::malloc(1000), 1000);
}

__attribute__((noinline)) void lose_item() {
    new Item{7, std::string(40, 'n'), 0};
}

__attribute__((noinline)) void lose_big() {
    void** p = static_cast<void**>(std::malloc(300000));
    fl_fill(p, 300000);
    p[1234] = std::malloc(128);
    fl_fill(p[1234], 128);
}

__attribute__((noinline)) void lose_list() {
    auto* l = new std::list<long>();
    for (long i = 0; i < 5; i++) l->push_back(i);
}

__attribute__((noinline)) void lose_realloced() {
    char* p = static_cast<char*>(std::malloc(16));
    fl_fill(p, 16);
    p = static_cast<char*>(std::realloc(p, 4000));
    fl_fill(p, 4000);
}

__attribute__((noinline)) void lose_calloc() {
    void* p = std::calloc(10, 12);
    (void)p;
}

__attribute__((noinline)) void lose_array() {
    new Widget[3];
}

__attribute__((noinline)) void lose_pair() {
    void** a = static_cast<void**>(std::malloc(72));
    void** b = static_cast<void**>(std::malloc(72));
    fl_fill(a, 72);
    fl_fill(b, 72);
    a[2] = b;
    b[5] = a;
}

}  // namespace app

int main() {
    app::keep_things();
    app::lose_plain();
    app::lose_item();
    app::lose_big();
    app::lose_list();
    app::lose_realloced();
    app::lose_calloc();
    app::lose_array();
    app::lose_pair();
    fl_scrub_stack();
    return 0;
}
