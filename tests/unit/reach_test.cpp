// The reachability scan (analysis/reach.h) on synthetic memory: roots, interior pointers,
// valgrind's cliques, the collector-link and chunk-link rules, malloc(0) blocks.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "analysis/reach.h"
#include "analysis/replay.h"

namespace leakscope::analysis {
namespace {

// A synthetic process: one memory region of words, blocks laid out in it.
class Heap {
 public:
  static constexpr uint64_t kBase = 0x100000;
  explicit Heap(size_t words = 4096) : words_(words, 0) {}
  uint64_t addr(size_t word) const { return kBase + word * 8; }
  void set(uint64_t at, uint64_t value) { words_[(at - kBase) / 8] = value; }
  // A block of `bytes` at word index `word`.
  size_t block(size_t word, uint64_t bytes, uint8_t layer = static_cast<uint8_t>(Layer::kMalloc), uint8_t obj = 0) {
    blocks_.push_back(HeapBlock{addr(word), bytes, static_cast<uint32_t>(blocks_.size() + 1), layer, obj});
    return blocks_.size() - 1;
  }
  const HeapImage& image() {
    if (image_.regions().empty()) {
      memcpy(image_.add_region(kBase, words_.size() * 8), words_.data(), words_.size() * 8);
      image_.finish();
    }
    return image_;
  }
  std::vector<HeapBlock>& blocks() { return blocks_; }

 private:
  std::vector<uint64_t> words_;
  std::vector<HeapBlock> blocks_;
  HeapImage image_;
};

std::vector<RootRange> root(const Heap& h, size_t word, size_t n = 1, RootKind kind = RootKind::kModule) {
  return {RootRange{h.addr(word), h.addr(word + n), kind}};
}

TEST(Reach, RootsReachThroughInteriorPointersAndLostCliquesSplitDirectIndirect) {
  Heap h;
  size_t a = h.block(100, 32), b = h.block(200, 64), c = h.block(300, 16), d = h.block(400, 16), e = h.block(500, 16);
  size_t f = h.block(600, 24), g = h.block(700, 24);
  h.set(h.addr(0), h.addr(100));       // root -> a
  h.set(h.addr(101), h.addr(200) + 40);  // a -> interior of b
  h.set(h.addr(400), h.addr(500));     // d <-> e: a lost cycle
  h.set(h.addr(500), h.addr(400));
  h.set(h.addr(600), h.addr(700) + 8);   // f -> g (interior): a lost tree
  Reach r(h.image(), h.blocks(), nullptr);
  r.flood(root(h, 0), {});
  EXPECT_EQ(r.marks()[a], Mark::kReached);
  EXPECT_EQ(r.marks()[b], Mark::kReached);
  r.cliques();
  EXPECT_EQ(r.marks()[c], Mark::kLost);      // nothing points to it
  EXPECT_EQ(r.marks()[d], Mark::kLost);      // the cycle's lowest address leads
  EXPECT_EQ(r.marks()[e], Mark::kIndirect);
  EXPECT_EQ(r.marks()[f], Mark::kLost);
  EXPECT_EQ(r.marks()[g], Mark::kIndirect);
}

TEST(Reach, AnEarlierCliqueIsAbsorbedOnlyThroughUnclaimedBlocksAsInValgrind) {
  // k0 -> k1 -> k2 -> k0 and k3 -> k1 (addresses ascending): k0 leads and claims k1, k2; k3
  // reaches only claimed blocks, so it stays a leader: two directly lost blocks.
  Heap h;
  size_t k0 = h.block(100, 16), k1 = h.block(200, 16), k2 = h.block(300, 16), k3 = h.block(400, 16);
  h.set(h.addr(100), h.addr(200));
  h.set(h.addr(200), h.addr(300));
  h.set(h.addr(300), h.addr(100));
  h.set(h.addr(400), h.addr(200));
  Reach r(h.image(), h.blocks(), nullptr);
  r.flood({}, {});
  r.cliques();
  EXPECT_EQ(r.marks()[k0], Mark::kLost);
  EXPECT_EQ(r.marks()[k1], Mark::kIndirect);
  EXPECT_EQ(r.marks()[k2], Mark::kIndirect);
  EXPECT_EQ(r.marks()[k3], Mark::kLost);
  // A lower block pointing into a higher leader's clique: the leader is absorbed.
  Heap h2;
  size_t low = h2.block(100, 16), mid = h2.block(200, 16), high = h2.block(300, 16);
  h2.set(h2.addr(200), h2.addr(300));  // mid -> high
  h2.set(h2.addr(300), h2.addr(100) + 8);  // high -> low: low leads, claims nothing first...
  Reach r2(h2.image(), h2.blocks(), nullptr);
  r2.flood({}, {});
  r2.cliques();
  EXPECT_EQ(r2.marks()[low], Mark::kIndirect);  // ...but mid's clique reaches it through high
  EXPECT_EQ(r2.marks()[mid], Mark::kLost);
  EXPECT_EQ(r2.marks()[high], Mark::kIndirect);
}

TEST(Reach, RegisterWordsAreRoots) {
  Heap h;
  size_t a = h.block(100, 32);
  Reach r(h.image(), h.blocks(), nullptr);
  r.flood({}, {h.addr(100) + 31});
  EXPECT_EQ(r.marks()[a], Mark::kReached);
}

TEST(Reach, CollectorLinksIntoAPythonPreheaderDoNotCount) {
  Heap h;
  size_t obj = h.block(100, 48, static_cast<uint8_t>(Layer::kPython), 1);
  h.set(h.addr(0), h.addr(100));      // a GC list link: points at the PyGC_Head
  Reach r(h.image(), h.blocks(), [](size_t) { return 16u; });
  r.flood(root(h, 0), {});
  EXPECT_EQ(r.marks()[obj], Mark::kLost);
  Heap h3;
  size_t o3 = h3.block(100, 48, static_cast<uint8_t>(Layer::kPython), 1);
  h3.set(h3.addr(0), h3.addr(100) + 16);  // a reference: points at the object
  Reach r3(h3.image(), h3.blocks(), [](size_t) { return 16u; });
  r3.flood(root(h3, 0), {});
  EXPECT_EQ(r3.marks()[o3], Mark::kReached);
}

TEST(Reach, GlibcChunkHeaderLinksFromTheMallocStateDoNotCount) {
  Heap h;
  // A 24-byte malloc block: its chunk is 32 bytes, the size word precedes the block.
  h.set(h.addr(99), 32 | 1);
  size_t x = h.block(100, 24);
  h.set(h.addr(0), h.addr(100) - 16 + 32);  // main_arena.top: the next chunk's header
  Reach r(h.image(), h.blocks(), nullptr);
  r.flood(root(h, 0, 1, RootKind::kMallocState), {});
  EXPECT_EQ(r.marks()[x], Mark::kLost);
  Reach r2(h.image(), h.blocks(), nullptr);
  r2.flood(root(h, 0, 1, RootKind::kModule), {});  // the same word in a program's global counts
  EXPECT_EQ(r2.marks()[x], Mark::kReached);
}

TEST(Reach, AZeroByteBlockIsReachedByAPointerToItsStart) {
  Heap h;
  size_t z = h.block(100, 0), n = h.block(102, 16);
  h.set(h.addr(0), h.addr(100));
  Reach r(h.image(), h.blocks(), nullptr);
  r.flood(root(h, 0), {});
  EXPECT_EQ(r.marks()[z], Mark::kReached);
  EXPECT_EQ(r.marks()[n], Mark::kLost);
  EXPECT_EQ(r.find(h.addr(100) + 1), -1);
}

TEST(Reach, LargeBlocksAcrossManyPagesAndDenseSmallOnes) {
  Heap h(1 << 16);
  size_t big = h.block(0, 100000);
  std::vector<size_t> small;
  for (size_t i = 0; i < 1000; ++i) small.push_back(h.block(20000 + 2 * i, 16));
  h.set(h.addr(12499), h.addr(20000 + 2 * 777) + 15);  // the last word of big -> small[777]
  Reach r(h.image(), h.blocks(), nullptr);
  r.flood({}, {h.addr(5)});
  EXPECT_EQ(r.marks()[big], Mark::kReached);
  for (size_t i = 0; i < small.size(); ++i) EXPECT_EQ(r.marks()[small[i]], i == 777 ? Mark::kReached : Mark::kLost) << i;
}

}  // namespace
}  // namespace leakscope::analysis
