// The conservative reachability scan (docs/findleaks.md, "Pointers" and "Lost, direct and
// indirect"): which blocks the roots reach, word by word, interior pointers included; and,
// among the others, valgrind memcheck's cliques: visited in address order, each unclaimed
// lost block claims every lost block it reaches; the unclaimed are directly lost, the claimed
// indirectly. Works on any HeapImage (a live copy, a dump, or a synthetic one in the unit
// tests). Not thread-safe.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "analysis/heap_image.h"
#include "analysis/heap_model.h"

namespace leakscope::analysis {

enum class Mark : uint8_t {
  kLost = 0,      // not reached (yet): after cliques(), a directly lost block
  kReached = 1,
  kIndirect = 2,  // lost, claimed by another lost block's clique
  kSet = 3,       // set aside by the caller (cyclic garbage): neither reached nor lost
};

class Reach {
 public:
  // `preheader(i)`: bytes at the start of block i that are not its object (a Python GC
  // object's collector links); pointers into them do not count. Called at most once per block,
  // only for blocks with `obj` set. Blocks must be sorted and non-overlapping.
  Reach(const HeapImage& image, const std::vector<HeapBlock>& blocks, std::function<uint32_t(size_t)> preheader);

  // The block a word points into (the pointer rules applied), or -1.
  int64_t find(uint64_t word) const;
  // Marks what the roots reach (memory ranges and register values), transitively.
  void flood(const std::vector<RootRange>& roots, const std::vector<uint64_t>& words);
  // Marks blocks reached (they are roots too: immortal objects), transitively.
  void flood_from_blocks(const std::vector<size_t>& blocks);
  // valgrind's cliques over the blocks still kLost (kSet ones take no part).
  void cliques();
  // Calls f(target block, word address) for every word of block i that points into a block.
  void for_each_pointer(size_t i, const std::function<void(size_t, uint64_t)>& f) const;

  std::vector<Mark>& marks() { return marks_; }
  const std::vector<Mark>& marks() const { return marks_; }
  uint64_t scanned_bytes() const { return scanned_; }

 private:
  template <typename F>
  void scan_range(uint64_t lo, uint64_t hi, F&& on_target) const;
  void drain_reached();
  void build_index();
  uint32_t preheader_of(size_t i) const;
  bool chunk_link(size_t block, uint64_t word) const;

  const HeapImage& image_;
  const std::vector<HeapBlock>& blocks_;
  std::function<uint32_t(size_t)> preheader_fn_;
  mutable std::vector<int16_t> preheader_;  // -1: not asked yet
  std::vector<Mark> marks_;
  std::vector<uint32_t> work_;
  uint64_t lo_ = 0, hi_ = 0;  // every block lies in [lo_, hi_)
  // Page (4 KiB) -> [first, last) blocks overlapping it: open addressing, key page+1.
  // Blocks over kIndexPages pages are not in it (a hostile size would make the index
  // unbounded): they are in big_, sorted, and searched when the index has no block.
  std::vector<uint32_t> big_;
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> first_, last_;
  uint64_t mask_ = 0;
  mutable uint64_t scanned_ = 0;
};

}  // namespace leakscope::analysis
