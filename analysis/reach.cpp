// The reachability scan: see reach.h.
#include "analysis/reach.h"

#include <algorithm>
#include <cstdint>

#include "analysis/replay.h"

namespace leakscope::analysis {
namespace {
constexpr unsigned kPageBits = 12;
constexpr uint64_t kMaxPreheader = 64;  // pointers this close to a block start may be links
// Blocks spanning more pages are searched in Reach::big_, not indexed page by page: a hostile
// dump's block of 2^55 bytes made the index ask for 2^44 slots (and real mappings of
// terabytes, reserved with MAP_NORESERVE, would cost gigabytes of index).
constexpr uint64_t kIndexPages = 16;

inline uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  return k ^ (k >> 33);
}
}  // namespace

Reach::Reach(const HeapImage& image, const std::vector<HeapBlock>& blocks, std::function<uint32_t(size_t)> preheader)
    : image_(image), blocks_(blocks), preheader_fn_(std::move(preheader)) {
  marks_.assign(blocks_.size(), Mark::kLost);
  preheader_.assign(blocks_.size(), -1);
  build_index();
}

void Reach::build_index() {
  if (blocks_.empty()) return;
  lo_ = blocks_.front().addr;
  hi_ = blocks_.back().addr + blocks_.back().extent();
  // Pages are non-decreasing along sorted, non-overlapping blocks: count them exactly first.
  uint64_t pages = 0;
  bool any = false;
  uint64_t prev_last = 0;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const HeapBlock& b = blocks_[i];
    uint64_t p0 = b.addr >> kPageBits, p1 = (b.addr + b.extent() - 1) >> kPageBits;
    if (p1 - p0 >= kIndexPages) {
      big_.push_back(static_cast<uint32_t>(i));
      continue;
    }
    if (any && p0 <= prev_last) p0 = prev_last + 1;
    if (p1 >= p0) pages += p1 - p0 + 1;
    if (!any || p1 > prev_last) prev_last = p1;
    any = true;
  }
  uint64_t cap = 16;
  while (cap < pages * 2) cap <<= 1;
  keys_.assign(cap, 0);
  first_.assign(cap, 0);
  last_.assign(cap, 0);
  mask_ = cap - 1;
  for (size_t i = 0, k = 0; i < blocks_.size(); ++i) {
    if (k < big_.size() && big_[k] == i) {
      ++k;
      continue;
    }
    const HeapBlock& b = blocks_[i];
    for (uint64_t p = b.addr >> kPageBits, e = (b.addr + b.extent() - 1) >> kPageBits; p <= e; ++p) {
      uint64_t s = mix(p) & mask_;
      while (keys_[s] && keys_[s] != p + 1) s = (s + 1) & mask_;
      if (!keys_[s]) {
        keys_[s] = p + 1;
        first_[s] = static_cast<uint32_t>(i);
      }
      last_[s] = static_cast<uint32_t>(i + 1);
    }
  }
}

uint32_t Reach::preheader_of(size_t i) const {
  if (preheader_[i] < 0) preheader_[i] = static_cast<int16_t>(preheader_fn_ ? preheader_fn_(i) : 0);
  return static_cast<uint32_t>(preheader_[i]);
}

int64_t Reach::find(uint64_t w) const {
  if (w - lo_ >= hi_ - lo_) return -1;
  uint64_t p = w >> kPageBits;
  uint64_t s = mix(p) & mask_;
  while (keys_[s] && keys_[s] != p + 1) s = (s + 1) & mask_;
  size_t i = SIZE_MAX;
  if (keys_[s]) {
    // The last block starting at or before w among those overlapping the page.
    auto b = blocks_.begin() + first_[s], e = blocks_.begin() + last_[s];
    auto it = std::upper_bound(b, e, w, [](uint64_t x, const HeapBlock& blk) { return x < blk.addr; });
    if (it != b && w - std::prev(it)->addr < std::prev(it)->extent()) i = static_cast<size_t>(std::prev(it) - blocks_.begin());
  }
  if (i == SIZE_MAX) {  // not an indexed block: one of the big ones, or none
    auto it = std::upper_bound(big_.begin(), big_.end(), w, [this](uint64_t x, uint32_t k) { return x < blocks_[k].addr; });
    if (it == big_.begin() || w - blocks_[*std::prev(it)].addr >= blocks_[*std::prev(it)].extent()) return -1;
    i = *std::prev(it);
  }
  const HeapBlock& blk = blocks_[i];
  if (blk.obj && w - blk.addr < kMaxPreheader && w - blk.addr < preheader_of(i)) return -1;
  return static_cast<int64_t>(i);
}

template <typename F>
void Reach::scan_range(uint64_t lo, uint64_t hi, F&& on_target) const {
  lo = (lo + 7) & ~7ull;
  const auto& regs = image_.regions();
  auto it = std::upper_bound(regs.begin(), regs.end(), lo, [](uint64_t a, const HeapImage::Region& r) { return a < r.lo; });
  if (it != regs.begin() && std::prev(it)->hi > lo) --it;
  for (; it != regs.end() && it->lo < hi; ++it) {
    uint64_t a = std::max(lo, it->lo), z = std::min(hi, it->hi);
    a = (a + 7) & ~7ull;
    if (a >= z) continue;
    const uint8_t* base = image_.region_bytes(*it) + (a - it->lo);
    const uint64_t n = (z - a) / 8;
    scanned_ += n * 8;
    for (uint64_t k = 0; k < n; ++k) {
      uint64_t w;
      __builtin_memcpy(&w, base + k * 8, 8);
      if (w - lo_ >= hi_ - lo_) continue;  // most words: not into the heap at all
      int64_t t = find(w);
      if (t >= 0) on_target(static_cast<size_t>(t), a + k * 8, w);
    }
  }
}

void Reach::drain_reached() {
  while (!work_.empty()) {
    size_t i = work_.back();
    work_.pop_back();
    const HeapBlock& b = blocks_[i];
    scan_range(b.addr, b.addr + b.size, [this](size_t t, uint64_t, uint64_t) {
      if (marks_[t] == Mark::kLost || marks_[t] == Mark::kIndirect) {
        marks_[t] = Mark::kReached;
        work_.push_back(static_cast<uint32_t>(t));
      }
    });
  }
}

void Reach::flood(const std::vector<RootRange>& roots, const std::vector<uint64_t>& words) {
  auto reach = [this](size_t t) {
    if (marks_[t] != Mark::kReached) {
      marks_[t] = Mark::kReached;
      work_.push_back(static_cast<uint32_t>(t));
    }
  };
  for (uint64_t w : words)
    if (int64_t t = find(w); t >= 0) reach(static_cast<size_t>(t));
  // Roots may overlap (a module's RELRO inside its data; in a hostile dump, 65536 threads on
  // one stack): bytes already scanned under the same rule are not scanned again. Roots come
  // sorted by start (HeapModel), so what each rule covered is one running end; a list out of
  // order starts it again.
  uint64_t start[2] = {0, 0}, covered[2] = {0, 0};  // [0] plain roots, [1] chunk links do not count
  for (const RootRange& r : roots) {
    const bool links = r.kind == RootKind::kMallocState || r.kind == RootKind::kUntracked;
    if (r.lo < start[links]) covered[links] = 0;
    start[links] = r.lo;
    const uint64_t lo = std::max(r.lo, covered[links]);
    if (lo >= r.hi) continue;
    covered[links] = r.hi & ~7ull;  // whole words scanned
    if (links)
      scan_range(lo, r.hi, [&](size_t t, uint64_t, uint64_t w) {
        if (!chunk_link(t, w)) reach(t);
      });
    else
      scan_range(lo, r.hi, [&](size_t t, uint64_t, uint64_t) { reach(t); });
    drain_reached();  // keeps the work list short
  }
  drain_reached();
}

void Reach::flood_from_blocks(const std::vector<size_t>& blocks) {
  for (size_t i : blocks) {
    if (marks_[i] == Mark::kReached) continue;
    marks_[i] = Mark::kReached;
    work_.push_back(static_cast<uint32_t>(i));
  }
  drain_reached();
}

void Reach::cliques() {
  for (size_t leader = 0; leader < blocks_.size(); ++leader) {
    if (marks_[leader] != Mark::kLost) continue;
    work_.push_back(static_cast<uint32_t>(leader));
    while (!work_.empty()) {
      size_t i = work_.back();
      work_.pop_back();
      const HeapBlock& b = blocks_[i];
      scan_range(b.addr, b.addr + b.size, [&](size_t t, uint64_t, uint64_t) {
        // An earlier leader reached from here is absorbed into this clique, as in valgrind.
        if (marks_[t] == Mark::kLost && t != leader) {
          marks_[t] = Mark::kIndirect;
          work_.push_back(static_cast<uint32_t>(t));
        }
      });
    }
  }
}

void Reach::for_each_pointer(size_t i, const std::function<void(size_t, uint64_t)>& f) const {
  const HeapBlock& b = blocks_[i];
  scan_range(b.addr, b.addr + b.size, [&](size_t t, uint64_t at, uint64_t) { f(t, at); });
}

// glibc: the header of the chunk after malloc block b (its size field is the word before b;
// bit 1 marks an mmapped chunk, which has no neighbour).
bool Reach::chunk_link(size_t t, uint64_t w) const {
  const HeapBlock& b = blocks_[t];
  // PyMem blocks over 512 bytes are malloc chunks too (pymalloc hands them to the raw domain).
  bool chunk = b.layer == static_cast<uint8_t>(Layer::kMalloc) || b.layer == static_cast<uint8_t>(Layer::kPyMemRaw) ||
               (b.layer == static_cast<uint8_t>(Layer::kPython) && b.size > 512);
  if (!chunk) return false;
  uint64_t sz = image_.word(b.addr - 8);
  if (sz & 2) return false;
  return w + 16 == b.addr + (sz & ~7ull);
}

}  // namespace leakscope::analysis
