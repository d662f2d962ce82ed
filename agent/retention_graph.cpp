// The retention walk's graph; see retention_graph.h and docs/retention.md.
#include "agent/retention_graph.h"

#include "agent/agent.h"

#include <time.h>


namespace leakscope::agent {


uint32_t hash_bytes(const void* p, size_t n, uint32_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return static_cast<uint32_t>(h ^ (h >> 32));
}

namespace {
bool named_kind(uint8_t k) {
  return k == LSP_EDGE_GLOBAL || k == LSP_EDGE_ATTR || k == LSP_EDGE_LOCAL || k == LSP_EDGE_CLOSURE ||
         k == kRootModule || k == kRootThread;
}
}  // namespace

void* dict_get(const lsp_objects* objs, const lsp_pyapi* api, void* dict, const char* name) {
  if (!dict) return nullptr;
  ptrdiff_t pos = 0;
  void *k, *v;
  const size_t n = std::strlen(name);
  while (api->dict_next(dict, &pos, &k, &v)) {
    lsp_pystr s;
    if (objs->str(k, &s) && s.kind == 1 && s.length == n && std::memcmp(s.data, name, n) == 0) return v;
  }
  return nullptr;
}

void* namespace_dict(const lsp_objects* objs, const lsp_pyapi* api, void* obj) {
  void* d = nullptr;
  objs->edges(api, obj, 0, [](void* c, void* t, int kind, uintptr_t) {
    if (kind == LSP_EDGE_NSDICT && !*static_cast<void**>(c)) *static_cast<void**>(c) = t;
  }, &d);
  return d;
}

void* attr_get(const lsp_objects* objs, const lsp_pyapi* api, void* obj, const char* name) {
  struct Find {
    const lsp_objects* objs;
    const char* name;
    size_t n;
    void* found;
  } f{objs, name, std::strlen(name), nullptr};
  objs->edges(api, obj, 0, [](void* c, void* t, int kind, uintptr_t label) {
    auto* f = static_cast<Find*>(c);
    lsp_pystr s;
    if (f->found || kind != LSP_EDGE_ATTR || !label || !f->objs->str(reinterpret_cast<void*>(label), &s)) return;
    if (s.kind == 1 && s.length == f->n && std::memcmp(s.data, f->name, f->n) == 0) f->found = t;
  }, &f);
  // An instance with a dict names its attributes one step further: look in that dict.
  return f.found ? f.found : dict_get(objs, api, namespace_dict(objs, api, obj), name);
}

uint32_t Graph::name_hash(uint64_t str_obj) const {
  lsp_pystr s;
  if (!str_obj || !objs_->str(reinterpret_cast<void*>(str_obj), &s)) return 0;
  return hash_bytes(s.data, s.length * static_cast<size_t>(s.kind), static_cast<uint32_t>(s.kind));
}

void Graph::fill(Node& nd, uint32_t parent, uint8_t kind, uint64_t label, bool pseudo) {
  nd.label = label;
  nd.parent = parent;
  nd.idom = parent;
  nd.size = 0;
  nd.stack = kNoNode;
  nd.kind = kind;
  nd.pseudo = pseudo ? 1 : 0;
  nd.ns = 0;
  nd.pre = 0;
  if (kind == LSP_EDGE_NSDICT) {
    nd.ns = static_cast<uint8_t>(label);
    nd.label = 0;
  }
  uint32_t h = hash_mix(parent == kNoNode ? 0 : nodes[parent].shape, kind);
  if (named_kind(kind)) h = hash_mix(h, name_hash(nd.label));
  if (kind == kFrame) h = hash_mix(h, nd.obj);
  if (!pseudo) {
    void* o = reinterpret_cast<void*>(nd.obj);
    h = hash_mix(h, reinterpret_cast<uint64_t>(objs_->type_of(o)));
    nd.pre = static_cast<uint8_t>(objs_->preheader(o) / 16);
  }
  nd.shape = h;
}

uint32_t Graph::add(uint64_t obj, uint32_t parent, uint8_t kind, uint64_t label, bool pseudo) {
  if (nodes.n >= max_nodes_) {
    cut_short = true;
    return kNoNode;
  }
  const uint32_t idx = static_cast<uint32_t>(nodes.n);
  if (!pseudo && seen_.find_or_insert(obj, idx) != kNoNode) return kNoNode;
  Node nd;
  nd.obj = obj;
  fill(nd, parent, kind, label, pseudo);
  return nodes.push(nd) ? idx : kNoNode;
}

void Graph::on_edge(void* ctx, void* target, int kind, uintptr_t label) {
  auto* g = static_cast<Graph*>(ctx);
  if (!target || g->cur_ == kNoNode) return;
  const auto t = reinterpret_cast<uint64_t>(target);
  // tp_traverse visits again what the named edges gave (an instance's attribute values): the
  // same edge twice changes nothing, so the repeat is dropped here, before any hash probe.
  if (g->named_owner_ != g->cur_) {
    g->named_owner_ = g->cur_;
    g->nnamed_ = 0;
  }
  if (kind == LSP_EDGE_GENERIC) {
    for (size_t i = 0; i < g->nnamed_; ++i)
      if (g->named_[i] == t) return;
  } else if (g->nnamed_ < kNamedMemo) {
    g->named_[g->nnamed_++] = t;
  }
  g->seen_.prefetch(t);
  __builtin_prefetch(target);
  g->pending_[g->npending_++] = PendingEdge{t, label, g->cur_, static_cast<uint8_t>(kind)};
  if (g->npending_ == kBatch) g->flush_edges();
}

void Graph::flush_edges() {
  const size_t n = npending_;
  npending_ = 0;
  for (size_t i = 0; i < n; ++i) edge_now(pending_[i]);
}

void Graph::edge_now(const PendingEdge& e) {
  if (nodes.n >= max_nodes_) {
    cut_short = true;
    return;
  }
  const uint32_t idx = static_cast<uint32_t>(nodes.n);
  const uint32_t v = seen_.find_or_insert(e.target, idx);
  if (v == kNoNode) {  // new
    if (nodes.n == nodes.cap && !nodes.reserve(nodes.cap * 2)) return;
    Node& nd = nodes.p[nodes.n++];
    nd.obj = e.target;
    fill(nd, e.parent, e.kind, e.label, false);
    return;
  }
  if (v == kNoNode - 1 || v >= nodes.n) return;  // out of memory: failed() says so
  if (v != e.parent && nodes[v].parent != e.parent) extra_.push(static_cast<uint64_t>(e.parent) << 32 | v);
}

void Graph::on_frame(void* ctx, void* code, int line) {
  auto* g = static_cast<Graph*>(ctx);
  g->flush_edges();  // the previous frame's locals
  g->cur_ = g->add(reinterpret_cast<uint64_t>(code), g->thread_node_, kFrame, static_cast<uint64_t>(line < 0 ? 0 : line), true);
}

// threading's name for a thread: threading._active[ident]._name, read without running code.
uint64_t Graph::thread_name(void* tstate) {
  void* mod = dict_get(objs_, api_, modules_dict_, "threading");
  if (!mod) return 0;
  void* active = dict_get(objs_, api_, namespace_dict(objs_, api_, mod), "_active");
  if (!active) return 0;
  const unsigned long ident = objs_->thread_ident(tstate);
  ptrdiff_t pos = 0;
  void *k, *th;
  while (api_->dict_next(active, &pos, &k, &th)) {
    long long id;
    if (!objs_->long_value(k, &id) || static_cast<unsigned long>(id) != ident) continue;
    void* name = attr_get(objs_, api_, th, "_name");
    lsp_pystr s;
    return name && objs_->str(name, &s) ? reinterpret_cast<uint64_t>(name) : 0;
  }
  return 0;
}

void Graph::add_thread_roots(void* interp, void* (*thread_head)(void*), void* (*thread_next)(void*)) {
  int guard = 0;
  for (void* ts = interp ? thread_head(interp) : nullptr; ts && guard < 100000; ts = thread_next(ts), ++guard) {
    thread_node_ = add(reinterpret_cast<uint64_t>(ts), kNoNode, kRootThread, thread_name(ts), true);
    if (thread_node_ == kNoNode) return;
    cur_ = kNoNode;
    objs_->thread_frames(api_, ts, on_frame, on_edge, this);
    flush_edges();
    cur_ = thread_node_;
    if (void* d = objs_->thread_dict(ts)) on_edge(this, d, kThreadDict, 0);
    flush_edges();
  }
}

void Graph::walk(void* modules_dict, void* interp, void* (*thread_head)(void*), void* (*thread_next)(void*),
                 const GraphLimits& lim, size_t expect) {
  max_nodes_ = lim.max_nodes;
  modules_dict_ = modules_dict;
  expect = expect < (1u << 16) ? (1u << 16) : expect > lim.max_nodes ? lim.max_nodes : expect;
  nodes.reserve(expect);
  seen_.reserve(expect);
  extra_.reserve(expect / 2);
  ptrdiff_t pos = 0;
  void *k, *v;
  while (modules_dict && api_->dict_next(modules_dict, &pos, &k, &v))
    if (v && seen_.find(reinterpret_cast<uint64_t>(v)) == kNoNode)
      add(reinterpret_cast<uint64_t>(v), kNoNode, kRootModule, reinterpret_cast<uint64_t>(k), false);
  add_thread_roots(interp, thread_head, thread_next);
  // Edges found at node i become nodes only when the queue is flushed: when the loop catches up
  // with the nodes made so far, the queue is flushed before the walk can end.
  for (size_t i = 0; !failed(); ++i) {
    if (i >= nodes.n) {
      if (!npending_) break;
      flush_edges();
      if (i >= nodes.n) break;
    }
    if ((i & 4095) == 0 && now_ns() > lim.deadline_ns) {
      cut_short = true;
      break;
    }
    if (i + 8 < nodes.n) __builtin_prefetch(reinterpret_cast<const void*>(nodes[i + 8].obj));
    if (nodes[i].pseudo) continue;
    const uint64_t obj = nodes[i].obj;
    const int ns = nodes[i].kind == LSP_EDGE_NSDICT ? nodes[i].ns : 0;
    cur_ = static_cast<uint32_t>(i);
    objs_->edges(api_, reinterpret_cast<void*>(obj), ns, on_edge, this);
  }
  npending_ = 0;  // left over when the walk was cut short
  cur_ = kNoNode;
}

int Graph::dominators(int max_passes) {
  // Predecessors other than the tree parent, grouped by target (counting sort).
  const size_t n = nodes.n;
  OwnArray<uint32_t> start, preds;
  if (!start.reserve(n + 1) || !preds.reserve(extra_.n + 1)) {
    start.release();
    preds.release();
    return max_passes + 1;
  }
  start.n = n + 1;
  preds.n = extra_.n;
  for (size_t i = 0; i < extra_.n; ++i) ++start[static_cast<uint32_t>(extra_[i]) + 1];
  for (size_t i = 1; i <= n; ++i) start[i] += start[i - 1];
  for (size_t i = 0; i < extra_.n; ++i) {
    const uint32_t to = static_cast<uint32_t>(extra_[i]);
    // start[to] is used as a cursor, restored below
    preds[start[to]++] = static_cast<uint32_t>(extra_[i] >> 32);
  }
  for (size_t i = n; i > 0; --i) start[i] = start[i - 1];
  start[0] = 0;
  extra_.release();
  // Every node's idom is an ancestor in the walk's tree, so it has a smaller index.
  auto intersect = [&](uint32_t a, uint32_t b) {
    while (a != b) {
      if (a == kNoNode || b == kNoNode) return kNoNode;
      if (a > b)
        a = nodes[a].idom;
      else
        b = nodes[b].idom;
    }
    return a;
  };
  int pass = 0;
  for (bool changed = true; changed && pass <= max_passes; ++pass) {
    changed = false;
    for (size_t v = 0; v < n; ++v) {
      uint32_t d = nodes[v].idom;
      if (d == kNoNode) continue;  // a root
      for (uint32_t j = start[v]; j < start[v + 1] && d != kNoNode; ++j) d = intersect(preds[j], d);
      if (d != nodes[v].idom) {
        nodes[v].idom = d;
        changed = true;
      }
    }
  }
  start.release();
  preds.release();
  return pass;
}

void Graph::release() {
  nodes.release();
  seen_.release();
  extra_.release();
}

}  // namespace leakscope::agent
