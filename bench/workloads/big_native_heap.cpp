// big_native_heap: allocate about SIZE_MIB MiB of malloc/new blocks, lose a known number of
// them, say "ready", and wait until a file named "stop" appears in the working directory
// (used by bench/findleaks.py).
//
// Usage: big_native_heap [SIZE_MIB]   (default 1024)
//
// The heap, all reachable from globals except what is lost on purpose:
//   - 64 singly linked lists of malloc'd nodes of 32-512 bytes (a header and a payload);
//   - a std::vector<Record*> of `new Record` (48 bytes), each owning a std::string name of
//     20-40 chars (heap storage) and a std::vector<uint32_t> of 2-24 values;
//   - a std::map<uint64_t, Node*> indexing every 8th list node (48-byte tree nodes).
// Payloads are small integers, never pointer-like values.
// Lost on purpose, after everything else:
//   - 1000 blocks of 64 bytes, pointer dropped: directly lost;
//   - 100 chains of a 64-byte head pointing to 3 nodes of 32 bytes: head direct, nodes
//     indirect.
// The "ready" line gives the requested bytes and what findleaks must find:
//   ready pid=PID bytes=B blocks=N direct_bytes=D direct_count=DC indirect_bytes=I indirect_count=IC
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

struct Node {
    Node* next;
    uint32_t size;
    uint32_t seq;
    unsigned char payload[];  // size - sizeof(Node) bytes
};

struct Record {
    uint64_t id;
    std::string name;
    std::vector<uint32_t> values;
};

constexpr int kLists = 64;
Node* g_heads[kLists];
std::vector<Record*>* g_records;
std::map<uint64_t, Node*>* g_index;

uint64_t g_state = 0x9e3779b97f4a7c15ull;
uint32_t rnd() {  // xorshift64*
    g_state ^= g_state >> 12;
    g_state ^= g_state << 25;
    g_state ^= g_state >> 27;
    return static_cast<uint32_t>((g_state * 0x2545f4914f6cdd1dull) >> 32);
}

// What malloc hands out for n bytes (glibc: 8-byte header, 16-byte chunks, 32 at least);
// used only to stop near SIZE_MIB of heap, the figures printed are requested bytes.
uint64_t chunk(uint64_t n) { return n + 8 <= 32 ? 32 : (n + 8 + 15) & ~15ull; }

uint64_t g_bytes = 0, g_heap = 0, g_blocks = 0;
void count(uint64_t n) {
    g_bytes += n;
    g_heap += chunk(n);
    ++g_blocks;
}

Node* new_node(uint32_t size, uint32_t seq) {
    auto* n = static_cast<Node*>(std::malloc(size));
    if (!n) std::abort();
    n->next = nullptr;
    n->size = size;
    n->seq = seq;
    std::memset(n->payload, static_cast<int>(seq & 0x3f), size - sizeof(Node));
    count(size);
    return n;
}

__attribute__((noinline)) void build(uint64_t target) {
    g_records = new std::vector<Record*>();
    g_index = new std::map<uint64_t, Node*>();
    count(sizeof *g_records);
    count(sizeof *g_index);
    Node* tails[kLists] = {};
    uint64_t vec_cap = 0;
    uint32_t seq = 0;
    while (g_heap < target) {
        // 3 list nodes, then one record
        for (int k = 0; k < 3; ++k) {
            uint32_t size = 32 + (rnd() % 31) * 16;  // 32..512
            Node* n = new_node(size, seq);
            int l = static_cast<int>(seq % kLists);
            if (tails[l]) tails[l]->next = n;
            else g_heads[l] = n;
            tails[l] = n;
            if (seq % 8 == 0) {
                (*g_index)[seq] = n;
                count(48);  // an rb-tree node of map<uint64_t, Node*>
            }
            ++seq;
        }
        auto* r = new Record;
        count(sizeof(Record));
        r->id = seq;
        r->name.assign(20 + rnd() % 21, static_cast<char>('a' + seq % 26));
        count(r->name.size() + 1);
        uint32_t nv = 2 + rnd() % 23;
        r->values.reserve(nv);
        for (uint32_t v = 0; v < nv; ++v) r->values.push_back(v * 3 + (seq & 0xff));
        count(nv * sizeof(uint32_t));
        g_records->push_back(r);
        if (g_records->capacity() != vec_cap) {  // the old array was freed
            g_bytes -= vec_cap * sizeof(Record*);
            g_heap -= vec_cap ? chunk(vec_cap * sizeof(Record*)) : 0;
            g_blocks -= vec_cap ? 1 : 0;
            vec_cap = g_records->capacity();
            count(vec_cap * sizeof(Record*));
        }
    }
}

struct Lost {
    uint64_t direct_bytes = 0, direct_count = 0, indirect_bytes = 0, indirect_count = 0;
};

// The blocks are filled with a byte pattern, and no pointer to them is kept anywhere.
__attribute__((noinline)) void lose(Lost* out) {
    for (int i = 0; i < 1000; ++i) {
        void* p = std::malloc(64);
        std::memset(p, 0x5a, 64);
        asm volatile("" : : "r"(p) : "memory");
        count(64);
        out->direct_bytes += 64;
        ++out->direct_count;
    }
    for (int i = 0; i < 100; ++i) {
        auto** head = static_cast<void**>(std::malloc(64));
        std::memset(head, 0x5a, 64);
        void** prev = head;
        for (int k = 0; k < 3; ++k) {
            auto** n = static_cast<void**>(std::malloc(32));
            std::memset(n, 0x5a, 32);
            n[0] = nullptr;
            prev[0] = n;
            prev = n;
            count(32);
            out->indirect_bytes += 32;
            ++out->indirect_count;
        }
        asm volatile("" : : "r"(head) : "memory");
        count(64);
        out->direct_bytes += 64;
        ++out->direct_count;
    }
}

// Overwrites the stack below the caller, where lose() left its dead locals.
__attribute__((noinline)) void scrub_stack() {
    volatile unsigned char buf[64 << 10];
    for (size_t i = 0; i < sizeof buf; ++i) buf[i] = 0;
}

}  // namespace

int main(int argc, char** argv) {
    long mib = argc > 1 ? std::atol(argv[1]) : 1024;
    build(static_cast<uint64_t>(mib) << 20);
    Lost lost;
    lose(&lost);
    scrub_stack();
    std::printf("ready pid=%d bytes=%llu blocks=%llu direct_bytes=%llu direct_count=%llu indirect_bytes=%llu "
                "indirect_count=%llu\n",
                static_cast<int>(getpid()), static_cast<unsigned long long>(g_bytes), static_cast<unsigned long long>(g_blocks),
                static_cast<unsigned long long>(lost.direct_bytes), static_cast<unsigned long long>(lost.direct_count),
                static_cast<unsigned long long>(lost.indirect_bytes),
                static_cast<unsigned long long>(lost.indirect_count));
    std::fflush(stdout);
    while (access("stop", F_OK) != 0) usleep(50000);
    // Use the data (so the compiler keeps every store to the globals), then exit without
    // freeing it, as many programs do.
    uint64_t sum = 0, nodes = 0;
    for (Node* h : g_heads)
        for (Node* n = h; n; n = n->next) sum += n->payload[0] + n->size, ++nodes;
    for (const Record* r : *g_records) sum += r->name.size() + r->values.back();
    sum += g_index->size();
    std::printf("done nodes=%llu records=%zu sum=%llu\n", static_cast<unsigned long long>(nodes),
                g_records->size(), static_cast<unsigned long long>(sum));
    return 0;
}
