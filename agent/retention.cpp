// Retention paths and retained sizes when a Python run ends (docs/retention.md): the object
// graph is walked (retention_graph.cpp) after the final snapshot is written, joined with the
// live table, reduced to groups per allocation stack and holders, and appended to the capture
// as one RETAIN record. Runs on the exiting thread with the GIL held and tracking off.
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "agent/agent.h"
#include "agent/aggregate.h"
#include "agent/asyncio_tasks.h"
#include "agent/gc_view.h"
#include "agent/python_objects.h"
#include "agent/retention_graph.h"

namespace leakscope::agent {
namespace {

constexpr uint64_t kBudgetNs = 10ull * 1000000000ull;
constexpr size_t kMaxNodes = 20u << 20;
constexpr size_t kMaxStacks = 2000, kGroupsPerStack = 4, kMaxHolders = 32, kMaxSteps = 32;
constexpr size_t kMaxPayload = 900u << 10;  // under the reader's 1 MiB string limit


struct Group {
  uint32_t stack, shape, rep;
  double objects, bytes, retained;
};
struct StackTotal {
  uint32_t stack;
  double objects, bytes;
};

// Interned strings and paths (lists of string ids), deduplicated by content.
struct Tables {
  OwnArray<char> chars;
  OwnArray<uint32_t> str_end;  // string i is chars[str_end[i-1] .. str_end[i])
  IndexMap str_ids;
  OwnArray<uint32_t> steps;
  OwnArray<uint32_t> path_end;
  IndexMap path_ids;
  uint32_t string(const char* s, size_t n) {
    const uint64_t key = static_cast<uint64_t>(hash_bytes(s, n, 1)) << 1 | 1 | static_cast<uint64_t>(n) << 33;
    uint32_t id = str_ids.find(key);
    if (id != kNoNode && str_len(id) == n && std::memcmp(str_at(id), s, n) == 0) return id;
    for (size_t i = 0; i < n; ++i) chars.push(s[i]);
    str_end.push(static_cast<uint32_t>(chars.n));
    uint32_t nid = static_cast<uint32_t>(str_end.n - 1);
    if (id == kNoNode) str_ids.insert(key, nid);
    return nid;
  }
  uint32_t path(const uint32_t* ids, size_t n) {
    const uint64_t key = static_cast<uint64_t>(hash_bytes(ids, n * 4, 2)) << 1 | 1;
    uint32_t id = path_ids.find(key);
    if (id != kNoNode && path_len(id) == n && std::memcmp(path_at(id), ids, n * 4) == 0) return id;
    for (size_t i = 0; i < n; ++i) steps.push(ids[i]);
    path_end.push(static_cast<uint32_t>(steps.n));
    uint32_t nid = static_cast<uint32_t>(path_end.n - 1);
    if (id == kNoNode) path_ids.insert(key, nid);
    return nid;
  }
  const char* str_at(uint32_t i) const { return chars.p + (i ? str_end[i - 1] : 0); }
  size_t str_len(uint32_t i) const { return str_end[i] - (i ? str_end[i - 1] : 0); }
  const uint32_t* path_at(uint32_t i) const { return steps.p + (i ? path_end[i - 1] : 0); }
  size_t path_len(uint32_t i) const { return path_end[i] - (i ? path_end[i - 1] : 0); }
  void release() {
    chars.release();
    str_end.release();
    str_ids.release();
    steps.release();
    path_end.release();
    path_ids.release();
  }
};

class Retention {
 public:
  Retention(const lsp_objects* objs, const PyObjectsApi& api) : objs_(objs), api_(api), g_(objs, &api.py) {}
  void run(OwnArray<uint8_t>* rec);  // the RETAIN record (empty when there is none)

 private:
  void join();
  void retained_sizes();
  void group();
  uint32_t render_path(uint32_t node, bool generalize);
  size_t step_text(uint32_t i, uint32_t type_from, bool generalize, char* out, size_t cap);
  size_t anchor_text(uint32_t i, char* out, size_t cap);
  size_t pystr(uint64_t obj, char* out, size_t cap, bool quoted);
  bool is_anchor(uint32_t i);
  uint32_t holder_of(uint32_t node);
  void encode(uint64_t t0, OwnArray<uint8_t>* rec);

  const lsp_objects* objs_;
  const PyObjectsApi& api_;
  Graph g_;
  OwnArray<uint64_t> ret_;  // retained bytes of each node
  OwnArray<Group> groups_;
  OwnArray<StackTotal> stacks_;
  OwnArray<uint32_t> kept_groups_;  // indices into groups_, in output order
  OwnArray<uint32_t> holders_;      // node indices
  Tables t_;
  int passes_ = 0;
};

// Object and owned buffer -> live table (stack, sizes), in walk order with the table slots and
// objects of nodes further on prefetched: the lookups are random, their misses overlap.
// Bound by cache misses (the objects, then two hash probes each), so it runs as a pipeline:
// node i+2K's object is prefetched; node i+K's object, now cached, gives its owned buffer and
// both probes are prefetched; node i is looked up.
void Retention::join() {
  constexpr size_t kAhead = 16, kRing = 2 * kAhead;
  const size_t n = g_.nodes.n;
  uint64_t bufs[kRing] = {};
  auto prepare = [&](size_t j) {
    const Node& a = g_.nodes[j];
    uint64_t buf = 0;
    if (!a.pseudo) {
      aggregate_prefetch_py(a.obj - a.pre * 16u);
      buf = reinterpret_cast<uint64_t>(objs_->owned_buffer(&api_.py, reinterpret_cast<void*>(a.obj)));
      if (buf) aggregate_prefetch_py(buf);
    }
    bufs[j % kRing] = buf;
  };
  for (size_t j = 0; j < kAhead && j < n; ++j) prepare(j);
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 * kAhead < n && !g_.nodes[i + 2 * kAhead].pseudo)
      __builtin_prefetch(reinterpret_cast<const void*>(g_.nodes[i + 2 * kAhead].obj));
    if (i + kAhead < n) prepare(i + kAhead);
    Node& nd = g_.nodes[i];
    if (nd.pseudo) continue;
    capture::LiveEntry e;
    uint64_t size = 0;
    if (aggregate_lookup_py(nd.obj - nd.pre * 16u, &e)) {
      size = e.size;
      nd.stack = e.stack;
    }
    if (const uint64_t buf = bufs[i % kRing]; buf && aggregate_lookup_py(buf, &e)) size += e.size;
    nd.size = static_cast<uint32_t>(std::min<uint64_t>(size, 0xffffffffu));
  }
}

void Retention::retained_sizes() {
  const size_t n = g_.nodes.n;
  if (!ret_.reserve(n)) return;
  ret_.n = n;
  for (size_t i = 0; i < n; ++i) ret_[i] = g_.nodes[i].size;
  for (size_t i = n; i-- > 0;)
    if (uint32_t d = g_.nodes[i].idom; d != kNoNode) ret_[d] += ret_[i];
}

void Retention::group() {
  IndexMap gid, sid;
  for (size_t i = 0; i < g_.nodes.n; ++i) {
    const Node& n = g_.nodes[i];
    if (n.stack == kNoNode) continue;
    const double w = capture::sample_weight(n.size, g_sample_rate);
    const uint64_t key = (static_cast<uint64_t>(n.stack) + 1) << 32 | n.shape;
    uint32_t k = gid.find(key);
    if (k == kNoNode) {
      k = static_cast<uint32_t>(groups_.n);
      if (!groups_.push(Group{n.stack, n.shape, static_cast<uint32_t>(i), 0, 0, 0}) || !gid.insert(key, k)) break;
    }
    Group& gr = groups_[k];
    gr.objects += w;
    gr.bytes += n.size * w;
    // An object whose immediate dominator was made by the same stack is in that one's
    // retained size already (a dict and the list in it, made on one line).
    const uint32_t d = n.idom;
    const bool inside = d != kNoNode && g_.nodes[d].stack == n.stack;
    if (!inside && ret_.n) gr.retained += static_cast<double>(ret_[i]) * w;
    uint32_t s = sid.find(static_cast<uint64_t>(n.stack) + 1);
    if (s == kNoNode) {
      s = static_cast<uint32_t>(stacks_.n);
      if (!stacks_.push(StackTotal{n.stack, 0, 0}) || !sid.insert(static_cast<uint64_t>(n.stack) + 1, s)) break;
    }
    stacks_[s].objects += w;
    stacks_[s].bytes += n.size * w;
  }
  gid.release();
  sid.release();
  // The stacks with the most reached bytes, each with its biggest groups.
  std::sort(stacks_.p, stacks_.p + stacks_.n, [](const StackTotal& a, const StackTotal& b) { return a.bytes > b.bytes; });
  if (stacks_.n > kMaxStacks) stacks_.n = kMaxStacks;
  std::sort(groups_.p, groups_.p + groups_.n, [](const Group& a, const Group& b) {
    return a.stack != b.stack ? a.stack < b.stack : a.bytes > b.bytes;
  });
  for (size_t s = 0; s < stacks_.n; ++s) {
    const uint32_t stack = stacks_[s].stack;
    const Group* lo = std::lower_bound(groups_.p, groups_.p + groups_.n, stack,
                                       [](const Group& a, uint32_t st) { return a.stack < st; });
    for (size_t j = 0; j < kGroupsPerStack && lo + j < groups_.p + groups_.n && lo[j].stack == stack; ++j)
      kept_groups_.push(static_cast<uint32_t>(lo + j - groups_.p));
  }
}

size_t Retention::pystr(uint64_t obj, char* out, size_t cap, bool quoted) {
  lsp_pystr s;
  if (!obj || cap < 8 || !objs_->str(reinterpret_cast<void*>(obj), &s)) return 0;
  size_t n = 0;
  if (quoted) out[n++] = '\'';
  size_t len = 0;
  const size_t room = cap - n - 8;
  lsp_pystr cut = s;
  if (quoted && cut.length > 40) cut.length = 40;
  to_utf8(cut, reinterpret_cast<uint8_t*>(out + n), room, &len);
  // Control characters would break a line of the report.
  for (size_t i = 0; i < len; ++i)
    if (static_cast<unsigned char>(out[n + i]) < 0x20) out[n + i] = '?';
  n += len;
  if (quoted && s.length > cut.length) n += static_cast<size_t>(snprintf(out + n, cap - n, "..."));
  if (quoted) out[n++] = '\'';
  return n;
}

bool Retention::is_anchor(uint32_t i) {
  const Node& n = g_.nodes[i];
  if (n.kind == kRootModule || n.kind == kRootThread) return true;
  if (n.pseudo) return false;
  void* o = reinterpret_cast<void*>(n.obj);
  void* t = objs_->type_of(o);
  return t == api_.py.module_type || t == api_.py.function_type || objs_->qualname(&api_.py, o) != nullptr;
}

size_t Retention::anchor_text(uint32_t i, char* out, size_t cap) {
  const Node& n = g_.nodes[i];
  void* o = reinterpret_cast<void*>(n.obj);
  if (n.kind == kRootModule) {
    size_t k = static_cast<size_t>(snprintf(out, cap, "module "));
    return k + pystr(n.label, out + k, cap - k, false);
  }
  if (n.kind == kRootThread) {
    size_t k = static_cast<size_t>(snprintf(out, cap, "thread "));
    size_t m = pystr(n.label, out + k, cap - k, false);
    if (!m) m = static_cast<size_t>(snprintf(out + k, cap - k, "%lu", objs_->thread_ident(o)));
    return k + m;
  }
  if (objs_->type_of(o) == api_.py.module_type) {
    // A module reached through another object: its __name__.
    size_t k = static_cast<size_t>(snprintf(out, cap, "module "));
    void* name = dict_get(objs_, &api_.py, namespace_dict(objs_, &api_.py, o), "__name__");
    size_t m = pystr(reinterpret_cast<uint64_t>(name), out + k, cap - k, false);
    return m ? k + m : static_cast<size_t>(snprintf(out, cap, "module ?"));
  }
  const bool fn = objs_->type_of(o) == api_.py.function_type;
  size_t k = static_cast<size_t>(snprintf(out, cap, fn ? "function " : "class "));
  return k + pystr(reinterpret_cast<uint64_t>(objs_->qualname(&api_.py, o)), out + k, cap - k, false);
}

// One step of a path: how node i was reached, with the type of node `type_from`.
size_t Retention::step_text(uint32_t i, uint32_t type_from, bool generalize, char* out, size_t cap) {
  const Node& n = g_.nodes[i];
  const char* type = g_.nodes[type_from].pseudo ? "?" : objs_->type_name(reinterpret_cast<void*>(g_.nodes[type_from].obj));
  char name[160];
  size_t nl = 0;
  switch (n.kind) {
    case kRootModule:
    case kRootThread: return anchor_text(i, out, cap);
    case kFrame: {
      void* file = nullptr;
      void* qual = objs_->code_name(reinterpret_cast<void*>(n.obj), &file);
      char f[160];
      size_t fl = pystr(reinterpret_cast<uint64_t>(file), f, sizeof f, false);
      f[fl] = 0;
      const char* base = strrchr(f, '/');
      nl = pystr(reinterpret_cast<uint64_t>(qual), name, sizeof name, false);
      name[nl] = 0;
      return static_cast<size_t>(snprintf(out, cap, "frame %s (%s:%llu)", name, base ? base + 1 : f,
                                          static_cast<unsigned long long>(n.label)));
    }
    case kThreadDict: return static_cast<size_t>(snprintf(out, cap, "thread-state dict (%s)", type));
    case LSP_EDGE_GLOBAL:
    case LSP_EDGE_ATTR:
    case LSP_EDGE_LOCAL:
    case LSP_EDGE_CLOSURE: {
      const char* what = n.kind == LSP_EDGE_GLOBAL  ? "global"
                         : n.kind == LSP_EDGE_ATTR  ? "attribute"
                         : n.kind == LSP_EDGE_LOCAL ? "local"
                                                    : "closure";
      nl = pystr(n.label, name, sizeof name, false);
      name[nl] = 0;
      return static_cast<size_t>(snprintf(out, cap, "%s %s (%s)", what, nl ? name : "?", type));
    }
    case LSP_EDGE_INDEX:
      if (generalize) return static_cast<size_t>(snprintf(out, cap, "[*] (%s)", type));
      return static_cast<size_t>(snprintf(out, cap, "[%llu] (%s)", static_cast<unsigned long long>(n.label), type));
    case LSP_EDGE_DICT_VALUE: {
      if (generalize) return static_cast<size_t>(snprintf(out, cap, "[*] (%s)", type));
      long long v;
      nl = pystr(n.label, name, sizeof name, true);
      if (!nl && n.label && objs_->long_value(reinterpret_cast<void*>(n.label), &v))
        nl = static_cast<size_t>(snprintf(name, sizeof name, "%lld", v));
      if (!nl && n.label)
        nl = static_cast<size_t>(snprintf(name, sizeof name, "<%s>", objs_->type_name(reinterpret_cast<void*>(n.label))));
      name[nl] = 0;
      return static_cast<size_t>(snprintf(out, cap, "[%s] (%s)", name, type));
    }
    case LSP_EDGE_DICT_KEY: return static_cast<size_t>(snprintf(out, cap, "key (%s)", type));
    case LSP_EDGE_MEMBER: return static_cast<size_t>(snprintf(out, cap, "member (%s)", type));
    case LSP_EDGE_DEFAULTS: return static_cast<size_t>(snprintf(out, cap, "defaults (%s)", type));
    case LSP_EDGE_KWDEFAULTS: return static_cast<size_t>(snprintf(out, cap, "kwdefaults (%s)", type));
    case LSP_EDGE_SELF: return static_cast<size_t>(snprintf(out, cap, "__self__ (%s)", type));
    case LSP_EDGE_FUNC: return static_cast<size_t>(snprintf(out, cap, "__func__ (%s)", type));
    case LSP_EDGE_CELL: return static_cast<size_t>(snprintf(out, cap, "contents (%s)", type));
    case LSP_EDGE_NSDICT: return static_cast<size_t>(snprintf(out, cap, "__dict__ (%s)", type));
    default: return static_cast<size_t>(snprintf(out, cap, "(%s)", type));
  }
}

// The node a group's objects hang from: the example's parent, past namespace dicts and cells.
uint32_t Retention::holder_of(uint32_t node) {
  uint32_t h = g_.nodes[node].parent;
  while (h != kNoNode && (g_.nodes[h].kind == LSP_EDGE_NSDICT || g_.nodes[h].kind == LSP_EDGE_CELL ||
                          (g_.nodes[h].parent != kNoNode && !g_.nodes[h].pseudo &&
                           objs_->type_of(reinterpret_cast<void*>(g_.nodes[h].obj)) == api_.py.cell_type)))
    h = g_.nodes[h].parent;
  return h;
}

// The path from the last anchor to `node`, folded (docs/retention.md), as a path id.
uint32_t Retention::render_path(uint32_t node, bool generalize) {
  uint32_t chain[4096];
  size_t m = 0;
  for (uint32_t i = node; i != kNoNode && m < 4096; i = g_.nodes[i].parent) chain[m++] = i;
  std::reverse(chain, chain + m);
  size_t from = 0;
  for (size_t k = 0; k + 1 < m; ++k)
    if (is_anchor(chain[k])) from = k;
  uint32_t ids[kMaxSteps + 1];
  size_t nids = 0, total = 0;
  char buf[512];
  // Steps, folding namespace dicts into the name that follows and cells into their contents.
  uint32_t steps[4096];
  uint32_t types[4096];
  for (size_t k = from; k < m; ++k) {
    const uint32_t i = chain[k];
    const uint8_t kind = g_.nodes[i].kind;
    if (k > from && kind == LSP_EDGE_NSDICT && k + 1 < m) continue;
    uint32_t type_from = i;
    if ((kind == LSP_EDGE_CLOSURE || kind == LSP_EDGE_LOCAL) && k + 1 < m && g_.nodes[chain[k + 1]].kind == LSP_EDGE_CELL) {
      type_from = chain[k + 1];
      ++k;
    }
    steps[total] = i;
    types[total] = type_from;
    ++total;
  }
  for (size_t s = 0; s < total; ++s) {
    // Long paths keep their first 4 and last 27 steps around one "..." step.
    if (total > kMaxSteps && s == 4) {
      ids[nids++] = t_.string("...", 3);
      s = total - (kMaxSteps - 5);
    }
    size_t n = s == 0 ? anchor_text(steps[s], buf, sizeof buf) : step_text(steps[s], types[s], generalize, buf, sizeof buf);
    ids[nids++] = t_.string(buf, std::min(n, sizeof buf - 1));
  }
  return t_.path(ids, nids);
}


void Retention::encode(uint64_t t0, OwnArray<uint8_t>* rec) {
  // Paths first (they fill the string table), then the record.
  OwnArray<uint32_t> rows;  // per kept group: kept-by path, example path
  for (size_t j = 0; j < kept_groups_.n; ++j) {
    const Group& gr = groups_[kept_groups_[j]];
    const uint32_t h = holder_of(gr.rep);
    rows.push(h == kNoNode ? render_path(gr.rep, true) : render_path(h, true));
    rows.push(render_path(gr.rep, false));
    // Modules, classes and threads hold everything: the holders worth naming are below them.
    if (h != kNoNode && !(is_anchor(h) && objs_->type_of(reinterpret_cast<void*>(g_.nodes[h].obj)) != api_.py.function_type))
      holders_.push(h);
  }
  std::sort(holders_.p, holders_.p + holders_.n);
  holders_.n = static_cast<size_t>(std::unique(holders_.p, holders_.p + holders_.n) - holders_.p);
  if (ret_.n)
    std::sort(holders_.p, holders_.p + holders_.n, [&](uint32_t a, uint32_t b) { return ret_[a] > ret_[b]; });
  if (holders_.n > kMaxHolders) holders_.n = kMaxHolders;
  OwnArray<uint32_t> holder_paths;
  for (size_t j = 0; j < holders_.n; ++j) holder_paths.push(render_path(holders_[j], false));

  OwnArray<uint8_t> p;
  put_varint(p, 1);  // payload version
  put_varint(p, t0 - g_start_ns);
  put_varint(p, now_ns() - t0);
  put_varint(p, g_.nodes.n);
  put_varint(p, g_.extra_edges());
  put_varint(p, (g_.cut_short ? 1u : 0u) | (passes_ > 8 ? 2u : 0u) | (g_.failed() ? 4u : 0u));
  put_varint(p, t_.str_end.n);
  for (uint32_t i = 0; i < t_.str_end.n; ++i) {
    put_varint(p, t_.str_len(i));
    for (size_t c = 0; c < t_.str_len(i); ++c) p.push(static_cast<uint8_t>(t_.str_at(i)[c]));
  }
  put_varint(p, t_.path_end.n);
  for (uint32_t i = 0; i < t_.path_end.n; ++i) {
    put_varint(p, t_.path_len(i));
    for (size_t s = 0; s < t_.path_len(i); ++s) put_varint(p, t_.path_at(i)[s]);
  }
  put_varint(p, kept_groups_.n);
  for (size_t j = 0; j < kept_groups_.n; ++j) {
    const Group& gr = groups_[kept_groups_[j]];
    for (uint64_t v : {static_cast<uint64_t>(gr.stack), static_cast<uint64_t>(rows[2 * j]),
                       static_cast<uint64_t>(rows[2 * j + 1]), static_cast<uint64_t>(gr.objects + 0.5),
                       static_cast<uint64_t>(gr.bytes + 0.5), static_cast<uint64_t>(gr.retained + 0.5)})
      put_varint(p, v);
  }
  put_varint(p, holders_.n);
  for (size_t j = 0; j < holders_.n; ++j) {
    put_varint(p, holder_paths[j]);
    put_varint(p, ret_.n ? ret_[holders_[j]] : 0);
  }
  put_varint(p, stacks_.n);
  for (size_t s = 0; s < stacks_.n; ++s) {
    put_varint(p, stacks_[s].stack);
    put_varint(p, static_cast<uint64_t>(stacks_[s].objects + 0.5));
    put_varint(p, static_cast<uint64_t>(stacks_[s].bytes + 0.5));
  }
  if (!p.failed && !t_.chars.failed && p.n <= kMaxPayload) {
    put_record(*rec, capture::kRetain, p);
  } else {
    agent_message("leakscope: retention paths not written (out of memory or too large)");
  }
  p.release();
  rows.release();
  holder_paths.release();
}

void Retention::run(OwnArray<uint8_t>* rec) {
  const uint64_t t0 = now_ns();
  g_.walk(api_.modules(), api_.interp_main(), api_.thread_head, api_.thread_next,
          GraphLimits{t0 + kBudgetNs, kMaxNodes}, aggregate_live_py_count());
  // Pending tasks, and which of them nothing reaches (before the visited map goes).
  if (!g_.cut_short && !g_.failed()) tasks_census(rec, &g_.seen());
  g_.release_seen();
  join();
  passes_ = g_.dominators(8);
  retained_sizes();
  group();
  encode(t0, rec);
  g_.release();
  ret_.release();
  groups_.release();
  stacks_.release();
  kept_groups_.release();
  holders_.release();
  t_.release();
}

}  // namespace

bool g_retention = true;

bool retention_ready() {
  return g_retention && owns_capture() && g_enabled.load() && keeps_live_table() && g_py_state.load() == PyState::kInstalled &&
         !g_forked_child;
}

namespace {

// Runs the whole walk on this thread (GIL held by the caller, tracking off for it).
void retention_run(OwnArray<uint8_t>* rec) {
  const PyObjectsApi* api = py_objects_api();
  if (!api) return;
  const bool was = t_in_hook;
  t_in_hook = true;
  Retention r(api->objs, *api);
  r.run(rec);
  t_in_hook = was;
}

// Live walks (`snapshot`, detach): a thread of ours takes the GIL like any foreign thread, has
// the rings consumed (while it holds the GIL no Python thread can add to the P table it reads),
// walks, and leaves the record for the writer thread, which keeps draining meanwhile.
std::atomic<int> g_live{0};  // 0 idle, 1 walking, 2 done
OwnArray<uint8_t> g_live_rec;

void live_walk(void*) {
  if (!retention_ready()) return;
  writer_flush_sync();
  retention_run(&g_live_rec);
  // The collector's exact lists while the GIL is held, for the next GCSTATS.
  if (lsp_gc_census c; gc_census(&c)) gc_census_note(c);
}

void* live_main(void*) {
  t_in_hook = true;  // nothing this thread allocates (its thread state) is the program's
  python_run_with_gil(live_walk, nullptr);
  g_live.store(2, std::memory_order_release);
  writer_wake();
  return nullptr;
}

}  // namespace

void retention_after_stop() {
  OwnArray<uint8_t> rec;
  retention_run(&rec);
  if (rec.n && !rec.failed) writer_append_after_stop(rec.p, rec.n);
  rec.release();
}

bool retention_start_live() {
  if (!retention_ready() || g_live.load() != 0) return false;
  g_live.store(1);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  const bool ok = pthread_create(&t, &a, live_main, nullptr) == 0;
  pthread_attr_destroy(&a);
  if (!ok) g_live.store(0);
  return ok;
}

bool retention_live_done(const uint8_t** rec, size_t* n) {
  if (g_live.load(std::memory_order_acquire) != 2) return false;
  *rec = g_live_rec.failed ? nullptr : g_live_rec.p;
  *n = g_live_rec.failed ? 0 : g_live_rec.n;
  return true;
}

void retention_live_release() {
  g_live_rec.release();
  g_live_rec.failed = false;
  g_live.store(0, std::memory_order_release);
}

void retention_live_forget_in_child() { g_live.store(0, std::memory_order_release); }

}  // namespace leakscope::agent
