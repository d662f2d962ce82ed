// The retention walk's graph (docs/retention.md): a breadth-first walk of the Python object
// graph from the interpreter's roots, one node per object with the edge that first reached it,
// the other edges kept for dominators. Runs on the exiting thread with the GIL held; its
// memory is the agent's own (own_map), any thread may use it, and all of it goes back.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "agent/own_containers.h"
#include "python/objects.h"

namespace leakscope::agent {

// Node kinds beyond python/objects.h's edge kinds.
enum : uint8_t {
  kRootModule = 100,  // a module in sys.modules; label = its key (str)
  kRootThread = 101,  // pseudo: a thread state; label = its name (str) or 0
  kFrame = 102,       // pseudo: a frame on a thread's stack; obj = code, label = line
  kThreadDict = 103,  // a thread state's dict
};

struct Node {
  uint64_t obj;     // PyObject*, or the thread state / code object of a pseudo node
  uint64_t label;   // index, borrowed PyObject* (name or key), or a frame's line
  uint32_t parent;  // kNoNode for roots
  uint32_t shape;   // hash of the generalised path (docs/retention.md, "Shape and groups")
  uint32_t idom;    // immediate dominator (kNoNode: the virtual root)
  uint32_t size;    // tracked bytes: block + owned buffer (capped)
  uint32_t stack;   // allocation stack, kNoNode when not tracked
  uint8_t kind;     // LSP_EDGE_* or the kinds above
  uint8_t pseudo;   // not an object
  uint8_t ns;       // NSDICT: the kind its values are named with
  uint8_t pre;      // bytes before the object in its block, / 16 (GC head, managed dict)
};

// A namespace dict's value for an ASCII name (no code runs), or nullptr.
void* dict_get(const lsp_objects* objs, const lsp_pyapi* api, void* dict, const char* name);
// An instance attribute by ASCII name (inline values or the instance dict; no code runs).
void* attr_get(const lsp_objects* objs, const lsp_pyapi* api, void* obj, const char* name);
// The dict an object names its attributes with (a module's, a class's, an instance's), or nullptr.
void* namespace_dict(const lsp_objects* objs, const lsp_pyapi* api, void* obj);

uint32_t hash_bytes(const void* p, size_t n, uint32_t seed);
inline uint32_t hash_mix(uint32_t a, uint64_t b) {
  uint64_t x = (static_cast<uint64_t>(a) << 32 | 0x9e3779b9u) ^ (b * 0xff51afd7ed558ccdull);
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ull;
  return static_cast<uint32_t>(x ^ (x >> 32));
}

struct GraphLimits {
  uint64_t deadline_ns;  // CLOCK_MONOTONIC
  size_t max_nodes;
};

class Graph {
 public:
  Graph(const lsp_objects* objs, const lsp_pyapi* api) : objs_(objs), api_(api) {}
  // Roots (modules, then threads with their frames), then breadth-first over every edge.
  // `expect`: about how many objects there are (sizes the tables up front).
  void walk(void* modules_dict, void* interp, void* (*thread_head)(void*), void* (*thread_next)(void*),
            const GraphLimits& lim, size_t expect);
  // Iterative dominators (Cooper, Harvey, Kennedy) seeded with the walk's tree; returns the
  // passes it took (max_passes + 1: not converged, sizes are then upper bounds).
  int dominators(int max_passes);
  void release();

  OwnArray<Node> nodes;
  bool cut_short = false;  // the limits stopped the walk
  bool failed() const { return nodes.failed || seen_.failed || extra_.failed; }
  size_t extra_edges() const { return extra_.n; }
  // The walk's visited objects (until release_seen): what the roots reach.
  const IndexMap& seen() const { return seen_; }
  void release_seen() { seen_.release(); }
  uint32_t name_hash(uint64_t str_obj) const;

 private:
  static void on_edge(void* ctx, void* target, int kind, uintptr_t label);
  static void on_frame(void* ctx, void* code, int line);
  uint32_t add(uint64_t obj, uint32_t parent, uint8_t kind, uint64_t label, bool pseudo);
  void fill(Node& nd, uint32_t parent, uint8_t kind, uint64_t label, bool pseudo);
  void add_thread_roots(void* interp, void* (*thread_head)(void*), void* (*thread_next)(void*));
  uint64_t thread_name(void* tstate);
  const lsp_objects* objs_;
  const lsp_pyapi* api_;
  IndexMap seen_;
  OwnArray<uint64_t> extra_;  // (from << 32 | to) for edges that are not the tree's
  void* modules_dict_ = nullptr;
  uint32_t cur_ = kNoNode;
  uint32_t thread_node_ = kNoNode;
  size_t max_nodes_ = 0;
  // Edges wait in a queue that spans objects: each edge's hash slot and target are prefetched
  // when it is queued and handled only when the queue is full, so some 64 cache misses overlap
  // (the walk is bound by them). Nodes are still added in the order the edges were found, so
  // the walk stays breadth-first.
  struct PendingEdge {
    uint64_t target;
    uint64_t label;
    uint32_t parent;
    uint8_t kind;
  };
  static constexpr size_t kBatch = 64;
  // The targets of the node's first named edges (on_edge drops tp_traverse's repeats of them).
  static constexpr size_t kNamedMemo = 8;
  uint64_t named_[kNamedMemo];
  size_t nnamed_ = 0;
  uint32_t named_owner_ = kNoNode;
  PendingEdge pending_[kBatch];
  size_t npending_ = 0;
  void flush_edges();
  void edge_now(const PendingEdge& e);
};

}  // namespace leakscope::agent
