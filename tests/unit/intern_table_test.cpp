// Unit tests for the agent's interning table (agent/intern_table.h).
#include "agent/intern_table.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <map>
#include <random>

namespace {
int g_maps = 0, g_unmaps = 0;
void* test_map(size_t n) {
  ++g_maps;
  void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? nullptr : m;
}
void test_unmap(void* p, size_t n) {
  ++g_unmaps;
  munmap(p, n);
}
using Table = leakscope::agent::BasicInternTable<test_map, test_unmap>;
}  // namespace

TEST(InternTable, FindsWhatWasInsertedAcrossGrowth) {
  Table t;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> ref;
  std::mt19937_64 rng(42);
  for (uint32_t i = 1; i <= 100000; ++i) {
    uint64_t a = rng(), b = rng() % 7;
    if (ref.count({a, b})) continue;
    ASSERT_TRUE(t.insert(a, b, i));
    ref[{a, b}] = i;
  }
  EXPECT_GT(g_maps, 1) << "the table should have grown";
  EXPECT_EQ(g_unmaps, g_maps - 1) << "old tables are released";
  for (const auto& [k, v] : ref) {
    auto* s = t.find(k.first, k.second);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->value, v);
  }
  EXPECT_EQ(t.find(1, 1ull << 62), nullptr);
}

TEST(InternTable, SameFirstKeyDifferentSecondKeyAreDistinct) {
  Table t;
  ASSERT_TRUE(t.insert(0x1000, 1, 7));
  ASSERT_TRUE(t.insert(0x1000, 2, 8));
  EXPECT_EQ(t.find(0x1000, 1)->value, 7u);
  EXPECT_EQ(t.find(0x1000, 2)->value, 8u);
  EXPECT_EQ(t.find(0x1000, 3), nullptr);
}

TEST(InternTable, DeadEntriesAreSkippedAndReinsertable) {
  // A freed code object: its address may be reused by a new code object with a new id.
  Table t;
  ASSERT_TRUE(t.insert(0xabc0, 0, 1));
  t.find(0xabc0, 0)->dead = 1;
  EXPECT_EQ(t.find(0xabc0, 0), nullptr);
  ASSERT_TRUE(t.insert(0xabc0, 0, 2));
  EXPECT_EQ(t.find(0xabc0, 0)->value, 2u);
  // growth drops tombstones and keeps the live entry
  for (uint32_t i = 0; i < 50000; ++i) ASSERT_TRUE(t.insert(0x100000 + i * 16, 0, 10 + i));
  EXPECT_EQ(t.find(0xabc0, 0)->value, 2u);
  EXPECT_EQ(t.size(), 50001u);
}
