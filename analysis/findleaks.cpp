// findleaks: see findleaks.h and docs/findleaks.md ("Python objects").
#include "analysis/findleaks.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <tuple>

#include "analysis/reach.h"
#include "analysis/replay.h"

namespace leakscope::analysis {

const char* lost_kind_name(LostKind k) {
  switch (k) {
    case LostKind::kDirect: return "direct";
    case LostKind::kIndirect: return "indirect";
    case LostKind::kCyclicGarbage: return "cyclic-garbage";
  }
  return "direct";
}

const char* findleaks_when_name(FindleaksWhen w) {
  switch (w) {
    case FindleaksWhen::kExit: return "exit";
    case FindleaksWhen::kLive: return "live";
    case FindleaksWhen::kDump: return "dump";
  }
  return "live";
}

namespace {

// Python objects in blocks, read with the running version's layout. Every read is checked.
class PyView {
 public:
  struct Obj {
    int16_t offset = -1;  // bytes before the object in its block; -1: no object there
    uint64_t type = 0;
    int64_t refcnt = 0;
  };
  PyView(const HeapImage& im, const lsp_py_layout* L, uint64_t type_type) : im_(im), L_(L), type_type_(type_type) {}

  // The object in a block, if any: the type pointer must lead to a type (its metatype is
  // `type` or a subclass), the pre-header must be the one that type's flags give, the block's
  // requested size must fit the type's (exactly, for fixed-size types other than str) and the
  // refcount must be one a live object can have. A block that is not an object (dict keys, a
  // buffer) fails one of these.
  Obj classify(const HeapBlock& b) const {
    if (!L_ || !b.obj) return {};
    for (uint64_t o = 0; o <= 48; o += 16) {
      if (o + 2 * sizeof(uint64_t) > b.size) break;
      uint64_t t = im_.word(b.addr + o + L_->ob_type);
      if (!is_type(t)) continue;
      uint64_t flags = im_.word(t + L_->tp_flags);
      if (L_->preheader_size(static_cast<unsigned long>(flags)) != o) continue;
      int64_t basic = static_cast<int64_t>(im_.word(t + L_->tp_basicsize));
      int64_t item = static_cast<int64_t>(im_.word(t + L_->tp_itemsize));
      // str is the exception: a compact string is smaller than tp_basicsize, and allocates its
      // characters inline although its itemsize is 0.
      bool str = (flags & L_->flag_unicode_subclass) != 0;
      if (basic <= 0 || item < 0 || (!str && o + static_cast<uint64_t>(basic) > b.size)) continue;
      if (item == 0 && !str && o + static_cast<uint64_t>(basic) != b.size) continue;
      // Live objects, immortal ones too (UINT_MAX on 64-bit 3.12+), have a refcount far below
      // 2^40; a pointer in the refcount's place (a GC link read as an object) does not.
      int64_t rc = static_cast<int64_t>(im_.word(b.addr + o + L_->ob_refcnt));
      if (rc <= 0 || rc > (int64_t{1} << 40)) continue;
      return Obj{static_cast<int16_t>(o), t, rc};
    }
    return {};
  }
  bool immortal(const Obj& o) const { return o.offset >= 0 && L_->is_immortal(o.refcnt); }
  std::string type_name(uint64_t t) const {
    uint64_t p = im_.word(t + L_->tp_name);
    std::string s;
    for (int i = 0; p && i < 120; ++i) {
      char c = 0;
      if (!im_.read(p + static_cast<uint64_t>(i), &c, 1) || c == 0) break;
      if (c < 0x20 || c > 0x7e) return "?";
      s += c;
    }
    return s.empty() ? "?" : s;
  }

 private:
  // A type: following ob_type from it reaches `type` itself within three steps (a class, its
  // metaclass, the metaclass's metaclass), each step a type subclass. One flag bit alone would
  // let a chain of collector links pass for a type.
  bool is_type(uint64_t t) const {
    if (!t || (t & 7)) return false;
    uint64_t meta = im_.word(t + L_->ob_type);
    for (int depth = 0; depth < 3; ++depth) {
      if (!meta || (meta & 7)) return false;
      if (meta == type_type_) return true;
      if (!(im_.word(meta + L_->tp_flags) & L_->flag_type_subclass)) return false;
      meta = im_.word(meta + L_->ob_type);
    }
    return false;
  }
  const HeapImage& im_;
  const lsp_py_layout* L_;
  uint64_t type_type_;
};

// LEAKSCOPE_DEBUG_WHY=HEXADDR: every root word and reached block word that points into the
// block at that address (a developer's aid, on stderr).
void debug_why(const HeapImage& im, const HeapModel& m, const Reach& r, uint64_t addr) {
  int64_t target = r.find(addr);
  fprintf(stderr, "why %llx: block %lld stack %u\n", static_cast<unsigned long long>(addr), static_cast<long long>(target),
          target >= 0 ? m.blocks[static_cast<size_t>(target)].stack : 0u);
  if (target < 0) return;
  for (const RootRange& rr : m.roots)
    for (uint64_t a = (rr.lo + 7) & ~7ull; a + 8 <= rr.hi; a += 8)
      if (r.find(im.word(a)) == target)
        fprintf(stderr, "  root kind %d [%llx, %llx) word at %llx\n", static_cast<int>(rr.kind),
                static_cast<unsigned long long>(rr.lo), static_cast<unsigned long long>(rr.hi), static_cast<unsigned long long>(a));
  for (uint64_t w : m.root_words)
    if (r.find(w) == target) fprintf(stderr, "  register %llx\n", static_cast<unsigned long long>(w));
  for (size_t i = 0; i < m.blocks.size(); ++i)
    if (r.marks()[i] == Mark::kReached)
      r.for_each_pointer(i, [&](size_t t, uint64_t at) {
        if (static_cast<int64_t>(t) == target)
          fprintf(stderr, "  block %llx+%llu (stack %u) word at %llx\n", static_cast<unsigned long long>(m.blocks[i].addr),
                  static_cast<unsigned long long>(m.blocks[i].size), m.blocks[i].stack, static_cast<unsigned long long>(at));
      });
}

}  // namespace

FindleaksResult find_leaks(const HeapImage& image, FindleaksWhen when) {
  HeapModel m = build_model(image);
  FindleaksResult res;
  res.when = when;
  res.conservative = m.conservative;
  res.time_ns = m.desc.time_ns;
  res.py_minor = m.py ? static_cast<uint32_t>(m.py->minor) : 0;
  res.notes = m.notes;
  for (const RootRange& r : m.roots) res.totals.root_bytes += r.hi - r.lo;
  const std::vector<HeapBlock>& bs = m.blocks;
  PyView py(image, m.py, m.desc.py_type_type);
  // One byte per block (tens of millions for a big heap): where its object starts, -1 for
  // none, -2 not looked at yet; the type and refcount are read again when asked for.
  std::vector<int8_t> offsets(bs.size(), -2);
  auto obj = [&](size_t i) -> PyView::Obj {
    if (offsets[i] == -2) {
      PyView::Obj o = py.classify(bs[i]);
      offsets[i] = static_cast<int8_t>(o.offset);
      return o;
    }
    if (offsets[i] < 0) return {};
    const uint64_t at = bs[i].addr + static_cast<uint64_t>(offsets[i]);
    return PyView::Obj{offsets[i], image.word(at + m.py->ob_type), static_cast<int64_t>(image.word(at + m.py->ob_refcnt))};
  };
  Reach r(image, bs, [&](size_t i) -> uint32_t {
    PyView::Obj o = obj(i);
    return o.offset > 0 ? static_cast<uint32_t>(o.offset) : 0;
  });
  r.flood(m.roots, m.root_words);
  std::vector<Mark>& mk = r.marks();
  if (const char* dbg = getenv("LEAKSCOPE_DEBUG_WHY")) debug_why(image, m, r, strtoull(dbg, nullptr, 16));

  // Immortal objects are never lost: they are roots of their own.
  std::vector<size_t> immortal;
  for (size_t i = 0; i < bs.size(); ++i)
    if (mk[i] == Mark::kLost && bs[i].obj && py.immortal(obj(i))) immortal.push_back(i);
  res.totals.immortal_count = immortal.size();
  r.flood_from_blocks(immortal);

  // Python: references found to each lost object's start, from other lost blocks (nothing
  // reached points to it). Refcount minus found: references nobody holds.
  std::vector<size_t> lost;
  for (size_t i = 0; i < bs.size(); ++i)
    if (mk[i] == Mark::kLost) lost.push_back(i);
  std::vector<uint64_t> found(lost.size(), 0);  // by index in `lost`: references found to it
  std::vector<uint8_t> from_explained;          // an explained object points to it
  std::vector<std::vector<uint32_t>> edges(lost.size());  // the lost graph, by index in `lost`
  auto lost_index = [&](size_t i) -> int64_t {  // `lost` is ascending
    auto it = std::lower_bound(lost.begin(), lost.end(), i);
    return it != lost.end() && *it == i ? it - lost.begin() : -1;
  };
  for (size_t k = 0; k < lost.size(); ++k) {
    r.for_each_pointer(lost[k], [&](size_t t, uint64_t at) {
      int64_t tk = lost_index(t);
      if (tk < 0) return;
      edges[k].push_back(static_cast<uint32_t>(tk));
      PyView::Obj o = obj(t);
      if (o.offset >= 0 && image.word(at) == bs[t].addr + static_cast<uint64_t>(o.offset)) ++found[static_cast<size_t>(tk)];
    });
  }
  auto explained = [&](size_t i) {  // i: a lost block
    PyView::Obj o = obj(i);
    return o.offset >= 0 && static_cast<uint64_t>(o.refcnt) <= found[static_cast<size_t>(lost_index(i))];
  };
  from_explained.assign(lost.size(), 0);
  for (size_t k = 0; k < lost.size(); ++k)
    if (explained(lost[k]))
      for (uint32_t t : edges[k]) from_explained[t] = 1;
  // Leaked: what a leak origin reaches (an object with references nobody holds, or a block
  // no explained object owns). The rest is cyclic garbage the collector has not freed yet.
  std::vector<uint8_t> leaked(lost.size(), 0);
  std::vector<uint32_t> work;
  for (size_t k = 0; k < lost.size(); ++k) {
    PyView::Obj o = obj(lost[k]);
    bool origin = o.offset >= 0 ? !explained(lost[k]) : !from_explained[k];
    if (origin && !leaked[k]) {
      leaked[k] = 1;
      work.push_back(static_cast<uint32_t>(k));
    }
  }
  while (!work.empty()) {
    uint32_t k = work.back();
    work.pop_back();
    for (uint32_t t : edges[k])
      if (!leaked[t]) {
        leaked[t] = 1;
        work.push_back(t);
      }
  }
  for (size_t k = 0; k < lost.size(); ++k)
    if (!leaked[k]) mk[lost[k]] = Mark::kSet;
  r.cliques();

  // Groups by (kind, layer, stack, type), with a few examples each.
  std::map<std::tuple<uint8_t, uint8_t, uint32_t, std::string>, LostGroup> groups;
  FindleaksTotals& tt = res.totals;
  for (size_t i = 0; i < bs.size(); ++i) {
    const HeapBlock& b = bs[i];
    if (mk[i] == Mark::kReached) {
      tt.reachable_bytes += b.size;
      ++tt.reachable_count;
      continue;
    }
    LostKind kind = mk[i] == Mark::kSet ? LostKind::kCyclicGarbage
                    : mk[i] == Mark::kIndirect ? LostKind::kIndirect : LostKind::kDirect;
    (kind == LostKind::kDirect ? tt.direct_bytes : kind == LostKind::kIndirect ? tt.indirect_bytes : tt.garbage_bytes) += b.size;
    ++(kind == LostKind::kDirect ? tt.direct_count : kind == LostKind::kIndirect ? tt.indirect_count : tt.garbage_count);
    PyView::Obj o = obj(i);
    std::string type = o.offset >= 0 ? py.type_name(o.type) : "";
    LostGroup& g = groups[{static_cast<uint8_t>(kind), b.layer, b.stack, type}];
    g.kind = kind;
    g.layer = b.layer;
    g.stack = b.stack;
    g.python_type = type;
    g.bytes += b.size;
    ++g.count;
    if (int64_t li = o.offset >= 0 ? lost_index(i) : -1; li >= 0) {
      uint64_t f = found[static_cast<size_t>(li)];
      if (static_cast<uint64_t>(o.refcnt) > f && !py.immortal(o)) g.unowned_refs += static_cast<uint64_t>(o.refcnt) - f;
    }
    if (g.examples.size() < kExamplesPerGroup) {
      LostExample ex;
      ex.addr = b.addr;
      size_t n = static_cast<size_t>(std::min<uint64_t>(b.size, kExampleBytes));
      if (const uint8_t* p = image.at(b.addr, n)) ex.head.assign(p, p + n);
      ex.refcount = o.offset >= 0 ? o.refcnt : -1;
      g.examples.push_back(std::move(ex));
    }
  }
  for (auto& [key, g] : groups) res.groups.push_back(std::move(g));
  std::stable_sort(res.groups.begin(), res.groups.end(), [](const LostGroup& a, const LostGroup& b) {
    if (a.kind != b.kind) return a.kind < b.kind;
    return a.bytes > b.bytes;
  });
  return res;
}

}  // namespace leakscope::analysis
