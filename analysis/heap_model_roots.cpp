// The roots of a process copy and its pymalloc arenas (docs/findleaks.md, "Roots"); the
// second half of build_model (heap_model.cpp).
#include <algorithm>
#include <cstring>
#include <string>

#include "analysis/heap_model.h"
#include "analysis/replay.h"

namespace leakscope::analysis {
namespace {

constexpr uint64_t kRedZone = 128;  // x86-64 SysV: a leaf function may keep data below rsp
constexpr uint64_t kMaxDtv = 1u << 14;
// DTV entries walked over all threads, at most: a hostile dump's 65536 threads could each name
// a DTV of kMaxDtv entries (2^30 reads and roots). A real DTV has tens of entries.
constexpr uint64_t kMaxDtvTotal = 1u << 22;
constexpr uint64_t kMaxTlsBlock = 16u << 20;

uint32_t u32_at(const HeapImage& im, uint64_t a) {
  uint32_t v = 0;
  im.read(a, &v, sizeof v);
  return v;
}

// Index of the first block with addr >= a.
size_t lower_block(const std::vector<HeapBlock>& bs, uint64_t a) {
  return static_cast<size_t>(
      std::lower_bound(bs.begin(), bs.end(), a, [](const HeapBlock& b, uint64_t x) { return b.addr < x; }) - bs.begin());
}

// [lo, hi) minus the blocks in it, as roots of `kind`.
void gaps_as_roots(HeapModel& m, uint64_t lo, uint64_t hi, RootKind kind) {
  uint64_t at = lo;
  size_t i = lower_block(m.blocks, lo);
  if (i > 0 && m.blocks[i - 1].addr + m.blocks[i - 1].size > lo) at = m.blocks[i - 1].addr + m.blocks[i - 1].size;
  for (; i < m.blocks.size() && m.blocks[i].addr < hi; ++i) {
    if (m.blocks[i].addr > at) m.roots.push_back(RootRange{at, m.blocks[i].addr, kind});
    at = std::max(at, m.blocks[i].addr + m.blocks[i].size);
  }
  if (at < hi) m.roots.push_back(RootRange{at, hi, kind});
}

// pymalloc: walks the pools of one arena. Each allocated slot without a tracked block is an
// object from before the PyMem wrappers (a root); free slots hold stale pointers and are
// skipped. False when a pool header does not fit the layout (nothing is added then).
bool walk_arena(const HeapImage& im, HeapModel& m, uint64_t lo, uint64_t hi) {
  const lsp_py_layout& L = *m.py;
  // pymalloc maps every arena with exactly arena_size bytes. Anything else from the arena
  // allocator (3.11+ frame data stack chunks, 16 KiB and up) or a host mapping of another size
  // is not an arena: without this check a region with no pool-aligned pool (or whose first
  // word is 0, e.g. a first data stack chunk's NULL `previous`) "walked" as an arena of empty
  // pools and was dropped from the roots, with every frame's locals in it.
  if (hi - lo != L.arena_size) return false;
  std::vector<RootRange> found;
  std::vector<uint8_t> free_slot;
  for (uint64_t pool = (lo + L.pool_size - 1) / L.pool_size * L.pool_size; pool + L.pool_size <= hi;
       pool += L.pool_size) {
    if (!im.at(pool, L.pool_overhead)) continue;  // never touched: an unused pool
    uint32_t count = u32_at(im, pool + L.pool_count);
    if (count == 0) continue;                      // empty: every slot is free
    uint32_t szidx = u32_at(im, pool + L.pool_szidx);
    uint32_t next = u32_at(im, pool + L.pool_nextoffset), maxnext = u32_at(im, pool + L.pool_maxnextoffset);
    uint64_t size = (static_cast<uint64_t>(szidx) + 1) * L.alignment;
    if (size > L.small_threshold || maxnext != L.pool_size - size || next < L.pool_overhead ||
        next > maxnext + size)
      return false;
    uint64_t first = pool + L.pool_overhead, carved = (next - L.pool_overhead) / size;
    free_slot.assign(static_cast<size_t>(carved), 0);
    uint64_t nfree = 0;
    for (uint64_t p = im.word(pool + L.pool_freeblock); p != 0; p = im.word(p)) {
      if (p < first || p >= first + carved * size || (p - first) % size != 0 || ++nfree > carved) return false;
      uint8_t& f = free_slot[static_cast<size_t>((p - first) / size)];
      if (f) return false;  // a loop
      f = 1;
    }
    if (carved - nfree != count) return false;
    size_t bi = lower_block(m.blocks, first);
    for (uint64_t k = 0; k < carved; ++k) {
      if (free_slot[static_cast<size_t>(k)]) continue;
      uint64_t s = first + k * size;
      while (bi < m.blocks.size() && m.blocks[bi].addr < s) ++bi;
      if (bi < m.blocks.size() && m.blocks[bi].addr == s) continue;  // tracked: judged as a block
      if (!found.empty() && found.back().hi == s) found.back().hi = s + size;
      else found.push_back(RootRange{s, s + size, RootKind::kInterpreter});
    }
  }
  for (const RootRange& r : found) m.arena_root_slots += r.hi - r.lo;
  m.roots.insert(m.roots.end(), found.begin(), found.end());
  ++m.arenas;
  return true;
}

// `sorted`: the image's mappings by start address (a linear search per thread was threads x
// mappings: 2^16 x 2^20 in a hostile dump). Mappings do not overlap (/proc/PID/maps; the dump
// reader refuses overlapping ones).
const ImageMapping* mapping_of(const std::vector<const ImageMapping*>& sorted, uint64_t a) {
  auto it = std::upper_bound(sorted.begin(), sorted.end(), a, [](uint64_t x, const ImageMapping* mp) { return x < mp->lo; });
  if (it == sorted.begin() || a >= (*std::prev(it))->hi) return nullptr;
  return *std::prev(it);
}

// Static TLS and thread descriptor, the DTV and each dynamically allocated TLS block.
void tls_roots(const HeapImage& im, HeapModel& m, uint64_t tp, uint64_t* dtv_budget) {
  const capture::ScanDescriptor& d = m.desc;
  uint64_t below = d.tls_static_size ? d.tls_static_size : 4096;
  uint64_t above = d.pthread_size ? d.pthread_size : 4096;
  uint64_t slo = tp > below ? tp - below : 0, shi = tp + above;
  m.roots.push_back(RootRange{slo, shi, RootKind::kTls});
  // pthread keys from 32 up: second-level arrays, calloc'd inside libc (not through our hooks).
  if (d.pthread_specific_off && d.key_level2_size && d.pthread_specific_n <= 64 && d.key_level2_size <= (1u << 16))
    for (uint64_t i = 1; i < d.pthread_specific_n; ++i)
      if (uint64_t l2 = im.word(tp + d.pthread_specific_off + 8 * i))
        m.roots.push_back(RootRange{l2, l2 + d.key_level2_size, RootKind::kTls});
  uint64_t dtv = im.word(tp + 8);  // tcbhead_t: tcb, dtv, self, ...
  uint64_t n = dtv >= 16 ? im.word(dtv - 16) : 0;  // dtv[-1].counter: entries
  if (!dtv || n == 0 || n > kMaxDtv || n > *dtv_budget) return;
  *dtv_budget -= n;
  m.roots.push_back(RootRange{dtv - 16, dtv + 16 * (n + 1), RootKind::kTls});
  for (uint64_t i = 1; i <= n; ++i) {
    uint64_t val = im.word(dtv + 16 * i), to_free = im.word(dtv + 16 * i + 8);
    if (val == 0 || val == ~0ull || (val >= slo && val < shi)) continue;
    uint64_t base = to_free ? to_free : val;
    uint64_t chunk = im.word(base - 8) & ~7ull;  // glibc's chunk size bounds the block
    if (chunk < 16 || chunk > kMaxTlsBlock) chunk = 4096;
    m.roots.push_back(RootRange{base, base + chunk, RootKind::kTls});
  }
}

void thread_roots(const HeapImage& im, HeapModel& m, std::vector<capture::ScanRange>* stack_skip) {
  const capture::ScanDescriptor& d = m.desc;
  std::vector<const ImageMapping*> maps;
  for (const ImageMapping& mp : im.maps) maps.push_back(&mp);
  std::sort(maps.begin(), maps.end(), [](const ImageMapping* a, const ImageMapping* b) { return a->lo < b->lo; });
  uint64_t dtv_budget = kMaxDtvTotal;
  for (const ImageThread& t : im.threads) {
    const ImageMapping* sm = mapping_of(maps, t.regs[kRegRsp]);
    if (t.tid == d.writer_tid) {  // leakscope's own thread: never a root
      if (sm) stack_skip->push_back(capture::ScanRange{sm->lo, sm->hi});
      continue;
    }
    uint64_t sp = t.regs[kRegRsp] > kRedZone ? t.regs[kRegRsp] - kRedZone : 0;
    bool requester = (d.flags & capture::kScanExit) && t.tid == d.requester_tid && d.requester_sp;
    if (requester) {
      sp = d.requester_sp;
      sm = mapping_of(maps, sp);
      m.root_words.insert(m.root_words.end(), std::begin(d.requester_regs), std::end(d.requester_regs));
    } else {
      m.root_words.insert(m.root_words.end(), std::begin(t.regs), std::end(t.regs));
    }
    if (sm) {
      m.roots.push_back(RootRange{std::max(sp, sm->lo), sm->hi, RootKind::kStack});
      if (sp > sm->lo) stack_skip->push_back(capture::ScanRange{sm->lo, std::max(sp, sm->lo)});  // stale
    }
    if (t.regs[kRegFsBase]) tls_roots(im, m, t.regs[kRegFsBase], &dtv_budget);
  }
}

// Conservative mode: every writable byte not in a block, not leakscope's, not below a stack
// pointer and not in a walked arena.
void untracked_roots(const HeapImage& im, HeapModel& m, std::vector<capture::ScanRange> skip) {
  std::sort(skip.begin(), skip.end(), [](const capture::ScanRange& a, const capture::ScanRange& b) { return a.lo < b.lo; });
  // Merged into disjoint ranges, each mapping looks only at the ones that reach into it (all
  // of them for every mapping was mappings x (threads + ...) in a hostile dump).
  std::vector<capture::ScanRange> merged;
  for (const capture::ScanRange& s : skip) {
    if (s.hi <= s.lo) continue;
    if (!merged.empty() && s.lo <= merged.back().hi) merged.back().hi = std::max(merged.back().hi, s.hi);
    else merged.push_back(s);
  }
  for (const ImageMapping& mp : im.maps) {
    if (!mp.writable()) continue;
    uint64_t at = mp.lo;
    auto first = std::upper_bound(merged.begin(), merged.end(), mp.lo,
                                  [](uint64_t a, const capture::ScanRange& r) { return a < r.hi; });
    for (auto s = first; s != merged.end() && s->lo < mp.hi; ++s) {
      if (s->lo > at) gaps_as_roots(m, at, s->lo, RootKind::kUntracked);
      at = std::max(at, s->hi);
    }
    if (at < mp.hi) gaps_as_roots(m, at, mp.hi, RootKind::kUntracked);
  }
}

}  // namespace

void model_arenas_and_roots(const HeapImage& im, HeapModel& m, std::vector<capture::ScanRange> arenas,
                            std::vector<capture::ScanRange> hosts) {
  const capture::ScanDescriptor& d = m.desc;
  std::vector<capture::ScanRange> skip;  // conservative mode: never roots
  for (uint64_t i = 0; i < d.n_own; ++i) {
    capture::ScanRange r{};
    if (im.read(im.descriptor + d.own_off + i * sizeof r, &r, sizeof r) && r.hi > r.lo) skip.push_back(r);
  }
  const std::string agent = d.agent_path;
  for (const ImageModule& mod : im.modules) {
    if (!agent.empty() && mod.path == agent) {
      skip.insert(skip.end(), mod.data.begin(), mod.data.end());
      continue;
    }
    std::string base = mod.path.substr(mod.path.rfind('/') + 1);
    bool libc = base.rfind("libc.so", 0) == 0 || base.rfind("libc-2.", 0) == 0;
    for (const capture::ScanRange& r : mod.data)
      m.roots.push_back(RootRange{r.lo, r.hi, libc ? RootKind::kMallocState : RootKind::kModule});
  }
  for (const ImageMapping& mp : im.maps)
    if (!agent.empty() && mp.path == agent) skip.push_back(capture::ScanRange{mp.lo, mp.hi});
  // Arenas: the interpreter's own (a region that is not a pymalloc arena, such as a frame
  // data stack, is all root), hosts (tracked mappings with blocks inside), and tracked
  // mappings of an arena's size that turn out to be arenas mapped before the wrappers.
  std::vector<size_t> became_arenas;
  if (m.py) {
    for (size_t i = 0; i < m.blocks.size(); ++i)
      if (m.blocks[i].layer == static_cast<uint8_t>(Layer::kMmap) && m.blocks[i].size == m.py->arena_size &&
          walk_arena(im, m, m.blocks[i].addr, m.blocks[i].addr + m.blocks[i].size)) {
        became_arenas.push_back(i);
        skip.push_back(capture::ScanRange{m.blocks[i].addr, m.blocks[i].addr + m.blocks[i].size});
      }
  }
  if (!became_arenas.empty()) {  // one pass: blocks may number tens of millions
    size_t w = 0, k = 0;
    for (size_t i = 0; i < m.blocks.size(); ++i) {
      if (k < became_arenas.size() && became_arenas[k] == i) {
        ++k;
        continue;
      }
      m.blocks[w++] = m.blocks[i];
    }
    m.blocks.resize(w);
  }
  for (const capture::ScanRange& a : arenas) {
    skip.push_back(a);
    if (m.py && walk_arena(im, m, a.lo, a.hi)) continue;
    if (m.py && a.hi - a.lo == m.py->arena_size) m.note(ModelNote::kArenaNotWalked);
    gaps_as_roots(m, a.lo, a.hi, RootKind::kInterpreter);
  }
  for (const capture::ScanRange& h : hosts) {
    skip.push_back(h);
    if (m.py && walk_arena(im, m, h.lo, h.hi)) continue;
    gaps_as_roots(m, h.lo, h.hi, RootKind::kUntracked);
  }
  thread_roots(im, m, &skip);
  m.conservative = (d.flags & (capture::kScanAttached | capture::kScanForeignMalloc)) != 0;
  if (d.flags & capture::kScanAttached) m.note(ModelNote::kConservativeAttached);
  if (d.flags & capture::kScanForeignMalloc) m.note(ModelNote::kConservativeForeign);
  if (m.conservative) untracked_roots(im, m, skip);
  std::sort(m.roots.begin(), m.roots.end(), [](const RootRange& a, const RootRange& b) { return a.lo < b.lo; });
}

}  // namespace leakscope::analysis
