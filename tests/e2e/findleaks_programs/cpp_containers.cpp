// findleaks case: C++ containers owned by a lost object.
//
// Kept (reachable): nothing but what the C++ runtime keeps, and the Session of any attempt that
//   failed the address check below (kept in g_attempts).
// Lost: one Session (new'd, its pointer dropped) owning by value a long std::string,
//   std::vector<int>, std::vector<std::string> (long strings), std::deque<int>,
//   std::map<int, std::string>, std::set<long>, std::list<int>,
//   std::unordered_map<std::string, int>, std::unique_ptr, a std::shared_ptr from make_shared
//   and a std::function with a capture too big to be stored inline.
//   Nothing points to the Session, but the map, set and list nodes and the hash table's bucket
//   array point back into it: it forms a cycle with them, and valgrind makes the lowest address
//   of a cycle its directly lost block. The program checks that the Session lies below every
//   block it owns (libstdc++ layouts), so valgrind's first clique is the Session's and claims
//   them all, whatever stale bytes the containers' spare capacity holds; an attempt that fails
//   the check is kept reachable and the program tries again, so the lost structure is the same
//   with any allocator.
//   Directly lost: the Session (sizeof 392). Indirectly, every block it owns (sizes as built by
//   g++ 12 / libstdc++ on x86-64): name 40; values 128 (capacity 32); tags 128 + 3 x 34;
//   queue 64 (map) + 512 (chunk); by_id 4 x 72 (nodes) + 4 x 31; ids 3 x 40; order 5 x 24;
//   index 3 x 56 (nodes) + 3 x 31 (keys) + 104 (13 buckets); payload 40; shared 56
//   (control block and object); fn 32 (the capture): 2119 B in 34 blocks.
// EXPECT: definitely 392/1 indirectly 2119/34
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "fl_common.h"

namespace app {

struct Payload {
    long v[5];
};

struct Capture {  // 32 B: too big for std::function's inline storage
    long v[4];
    long operator()() const { return v[0] + v[1] + v[2] + v[3]; }
};

struct Session {
    std::string name;
    std::vector<int> values;
    std::vector<std::string> tags;
    std::deque<int> queue;
    std::map<int, std::string> by_id;
    std::set<long> ids;
    std::list<int> order;
    std::unordered_map<std::string, int> index;
    std::unique_ptr<Payload> payload;
    std::shared_ptr<Payload> shared;
    std::function<long()> fn;
};

// The Session lies below every block it owns. Node and buffer layouts are libstdc++'s.
static bool session_lowest(Session* s) {
    auto above = [s](const void* block) { return (uintptr_t)block > (uintptr_t)s; };
    auto word = [](const void* object, size_t offset) {
        const void* w;
        std::memcpy(&w, (const char*)object + offset, sizeof w);
        return w;
    };
    bool ok = above(s->name.data()) && above(s->values.data()) && above(s->tags.data());
    for (auto& t : s->tags) ok = ok && above(t.data());
    // _Deque_impl: _M_map, _M_map_size, _M_start {_M_cur, _M_first, ...}, _M_finish {_M_cur, _M_first, ...}
    ok = ok && above(word(&s->queue, 0)) && above(word(&s->queue, 24)) && above(word(&s->queue, 56));
    for (auto& kv : s->by_id)  // _Rb_tree_node: 32 B of links, then the value
        ok = ok && above((const char*)&kv - 32) && above(kv.second.data());
    for (auto& v : s->ids) ok = ok && above((const char*)&v - 32);
    for (auto& v : s->order) ok = ok && above((const char*)&v - 16);  // _List_node: 16 B of links
    for (auto& kv : s->index)  // _Hash_node: the next pointer, then the value
        ok = ok && above((const char*)&kv - 8) && above(kv.first.data());
    ok = ok && above(word(&s->index, 0));  // _Hashtable's first member: the bucket array
    ok = ok && above(s->payload.get());
    ok = ok && above((const char*)s->shared.get() - 16);  // _Sp_counted_ptr_inplace: vptr, counts, object
    ok = ok && above(s->fn.target<Capture>());
    return ok;
}

__attribute__((noinline)) Session* make_session() {
    Session* s = new Session();
    s->name = "session-with-a-name-longer-than-fifteen";
    for (int i = 0; i < 20; i++) s->values.push_back(i);
    for (int i = 0; i < 3; i++) s->tags.push_back("tag-number-" + std::to_string(i) + "-long-enough-for-heap");
    for (int i = 0; i < 10; i++) s->queue.push_back(i);
    for (int i = 0; i < 4; i++) s->by_id[i] = "value-string-" + std::to_string(i) + "-on-the-heap";
    for (long i = 0; i < 3; i++) s->ids.insert(i * 7);
    for (int i = 0; i < 5; i++) s->order.push_back(i);
    for (int i = 0; i < 3; i++) s->index["index-key-" + std::to_string(i) + "-long-enough-too"] = i;
    s->payload.reset(new Payload());
    s->shared = std::make_shared<Payload>();
    s->fn = Capture{{1, 2, 3, 4}};
    return s;
}

static Session* g_attempts[64];

__attribute__((noinline)) int lose_session() {
    for (int attempt = 0; attempt < 64; attempt++) {
        Session* s = make_session();
        if (session_lowest(s)) return 0;   // dropped: lost
        g_attempts[attempt] = s;           // kept, try again
    }
    return 1;
}

}  // namespace app

int main() {
    if (app::lose_session() != 0) {
        std::puts("cpp_containers: no Session below all its blocks in 64 attempts");
        return 1;
    }
    fl_scrub_stack();
    return 0;
}
