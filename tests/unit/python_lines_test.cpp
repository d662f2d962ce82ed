// python_lines_test.cpp - tests for symbolize/python_lines (CPython line tables -> lines).
//
// 1. Vectors from real interpreters: every tests/unit/data/python_lines_3.*.txt (written by
//    tests/unit/gen_python_lines_vectors.py under CPython 3.9 .. 3.13, expected lines taken
//    from dis.findlinestarts (3.9) / code.co_lines() (3.10+), i.e. what CPython's
//    PyCode_Addr2Line in Objects/codeobject.c answers) is checked at every position, through
//    both python_line() and PythonLineTable.
// 2. Hand-written tables for each kind, including hostile ones (empty, truncated varints,
//    garbage, giant positions): no crash, bounded time, python_line == PythonLineTable.
#include "symbolize/python_lines.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace ls = leakscope::symbolize;

namespace {

constexpr uint64_t kMinus1x32 = 0xffffffffu;
constexpr uint64_t kMinus1x64 = ~uint64_t{0};

std::string from_hex(const std::string& hex) {
  if (hex == "-") return {};
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int v : b) s.push_back(static_cast<char>(v));
  return s;
}

// Both entry points must agree on everything.
int both(int kind, const std::string& table, int first, uint64_t pos) {
  const int a = ls::python_line(kind, table, first, pos);
  const int b = ls::PythonLineTable(kind, table, first).line(pos);
  EXPECT_EQ(a, b) << "kind " << kind << " pos " << pos;
  return a;
}

struct VectorCode {
  int kind = 0;
  int firstlineno = 0;
  uint64_t npositions = 0;
  std::string name;
  std::string table;
  struct R {
    uint64_t start, end;
    int line;
  };
  std::vector<R> ranges;
};

std::vector<VectorCode> read_vectors(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<VectorCode> codes;
  std::string line;
  VectorCode cur;
  bool open = false;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string word;
    ss >> word;
    if (word == "code") {
      cur = VectorCode{};
      ss >> cur.kind >> cur.firstlineno >> cur.npositions >> cur.name;
      open = true;
    } else if (word == "table") {
      std::string hex;
      ss >> hex;
      cur.table = from_hex(hex);
    } else if (word == "end") {
      if (open) codes.push_back(cur);
      open = false;
    } else {
      VectorCode::R r{};
      std::istringstream rs(line);
      rs >> r.start >> r.end >> r.line;
      EXPECT_FALSE(rs.fail()) << path << ": bad line: " << line;
      cur.ranges.push_back(r);
    }
  }
  return codes;
}

}  // namespace

TEST(PythonLines, RealInterpreterVectors) {
  const std::filesystem::path dir = std::filesystem::path(LEAKSCOPE_SOURCE_DIR) / "tests/unit/data";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string fname = entry.path().filename().string();
    if (fname.rfind("python_lines_", 0) != 0 || entry.path().extension() != ".txt") continue;
    ++files;
    SCOPED_TRACE(fname);
    const auto codes = read_vectors(entry.path());
    ASSERT_FALSE(codes.empty());
    uint64_t checked = 0;
    for (const auto& c : codes) {
      SCOPED_TRACE(c.name);
      const ls::PythonLineTable t(c.kind, c.table, c.firstlineno);
      uint64_t covered = 0;
      int mismatches = 0;
      for (const auto& r : c.ranges) {
        ASSERT_EQ(r.start, covered);
        for (uint64_t p = r.start; p < r.end; ++p) {
          const int slow = ls::python_line(c.kind, c.table, c.firstlineno, p);
          const int fast = t.line(p);
          if ((slow != r.line || fast != r.line) && ++mismatches <= 5) {
            ADD_FAILURE() << "position " << p << ": expected " << r.line << ", python_line "
                          << slow << ", PythonLineTable " << fast;
          }
          ++checked;
        }
        covered = r.end;
      }
      EXPECT_EQ(covered, c.npositions);
      EXPECT_EQ(mismatches, 0);
      // Out of range positions: "not started" gives firstlineno, past the end does not crash.
      EXPECT_EQ(t.line(kMinus1x32), c.firstlineno);
      EXPECT_EQ(t.line(kMinus1x64), c.firstlineno);
      EXPECT_EQ(ls::python_line(c.kind, c.table, c.firstlineno, kMinus1x32), c.firstlineno);
      for (uint64_t p : {c.npositions, c.npositions + 1000, uint64_t{1} << 40,
                         uint64_t{0x7fffffff}, uint64_t{1} << 62, kMinus1x64 >> 1}) {
        const int a = ls::python_line(c.kind, c.table, c.firstlineno, p);
        EXPECT_EQ(a, t.line(p));
        EXPECT_GE(a, -1);
      }
    }
    EXPECT_GT(checked, 0u);
  }
  EXPECT_GE(files, 1) << "no python_lines_*.txt vector files in " << dir;
}

// ---- 3.9 co_lnotab (positions in bytes) ----
TEST(PythonLines, Lnotab39) {
  // firstlineno 10: [0,6) line 10, [6,10) line 12, [10,310) line 9 (negative delta),
  // 300 bytes = 255 + 45 with a (255, 0) continuation pair, then +200 lines = 127 + 73.
  const std::string t = bytes({6, 2, 4, -3 & 0xff, 255, 0, 45, 127, 0, 73});
  EXPECT_EQ(both(9, t, 10, 0), 10);
  EXPECT_EQ(both(9, t, 10, 5), 10);
  EXPECT_EQ(both(9, t, 10, 6), 12);
  EXPECT_EQ(both(9, t, 10, 9), 12);
  EXPECT_EQ(both(9, t, 10, 10), 9);
  EXPECT_EQ(both(9, t, 10, 309), 9);
  EXPECT_EQ(both(9, t, 10, 310), 209);
  EXPECT_EQ(both(9, t, 10, 100000), 209);  // past the end: last line (as CPython 3.9)
  EXPECT_EQ(both(9, t, 10, kMinus1x32), 10);
  EXPECT_EQ(both(9, t, 10, kMinus1x64), 10);
  // Leading (0, n) pair applies from offset 0; odd trailing byte is ignored.
  EXPECT_EQ(both(9, bytes({0, 3, 2, 1, 7}), 1, 0), 4);
  EXPECT_EQ(both(9, bytes({0, 3, 2, 1, 7}), 1, 2), 5);
  EXPECT_EQ(both(9, "", 42, 0), 42);
  EXPECT_EQ(both(9, "", 42, 1234), 42);
}

// ---- 3.10 co_linetable (positions in code units, table in bytes) ----
TEST(PythonLines, Linetable310) {
  // Byte ranges: [0,4) line 5+1, [4,10) no line, [10,14) line 6+1+1 (the zero-size entry's
  // delta counts), [14,268) and [268,270) line 8-3.
  const std::string t =
      bytes({4, 1, 6, 0x80, 0, 1, 4, 1, 254, 0xfd, 2, 0});
  EXPECT_EQ(both(10, t, 5, 0), 6);
  EXPECT_EQ(both(10, t, 5, 1), 6);
  EXPECT_EQ(both(10, t, 5, 2), -1);
  EXPECT_EQ(both(10, t, 5, 4), -1);
  EXPECT_EQ(both(10, t, 5, 5), 8);
  EXPECT_EQ(both(10, t, 5, 6), 8);
  EXPECT_EQ(both(10, t, 5, 7), 5);
  EXPECT_EQ(both(10, t, 5, 133), 5);
  EXPECT_EQ(both(10, t, 5, 134), 5);
  EXPECT_EQ(both(10, t, 5, 135), 5);
  EXPECT_EQ(both(10, t, 11, 135), 11);  // past the end: last known line (11 + 1 + 1 + 1 - 3)
  EXPECT_EQ(both(10, t, 5, kMinus1x32), 5);
  EXPECT_EQ(both(10, t, 5, kMinus1x64), 5);
  EXPECT_EQ(both(10, "", 5, 0), 5);
  // Trailing zero-sized entries (CPython would assert) and an odd trailing byte.
  EXPECT_EQ(both(10, bytes({2, 1, 0, 1, 0, 1}), 5, 0), 6);
  EXPECT_EQ(both(10, bytes({2, 1, 0, 1, 0, 1}), 5, 1), 8);
  EXPECT_EQ(both(10, bytes({2, 1, 7}), 5, 1), 6);
}

// ---- 3.11+ location table (positions in code units) ----
namespace {
std::string varint(uint32_t v) {
  std::string s;
  while (v >= 64) {
    s.push_back(static_cast<char>(64 | (v & 63)));
    v >>= 6;
  }
  s.push_back(static_cast<char>(v));
  return s;
}
std::string svarint(int v) {
  return varint(v < 0 ? (static_cast<uint32_t>(-v) << 1) | 1 : static_cast<uint32_t>(v) << 1);
}
char head(int code, int units) { return static_cast<char>(0x80 | (code << 3) | (units - 1)); }
}  // namespace

TEST(PythonLines, LocationTable311) {
  std::string t;
  t += head(13, 1) + svarint(0);                                  // [0,1) line 100
  t += head(14, 3) + svarint(5) + varint(0) + varint(5) + varint(9);  // [1,4) line 105
  t += head(0, 2) + bytes({0x12});                                // [4,6) short: line 105
  t += head(11, 1) + bytes({3, 9});                               // [6,7) one-line +1: 106
  t += head(12, 8) + bytes({3, 9});                               // [7,15) +2: 108
  t += head(15, 2);                                               // [15,17) no line
  t += head(10, 1) + bytes({1, 2});                               // [17,18) +0: 108
  t += head(13, 4) + svarint(-300);                               // [18,22) 108 - 300
  t += head(13, 1) + svarint(1000000);                            // [22,23) big delta
  EXPECT_EQ(both(11, t, 100, 0), 100);
  EXPECT_EQ(both(11, t, 100, 1), 105);
  EXPECT_EQ(both(11, t, 100, 3), 105);
  EXPECT_EQ(both(11, t, 100, 5), 105);
  EXPECT_EQ(both(11, t, 100, 6), 106);
  EXPECT_EQ(both(11, t, 100, 14), 108);
  EXPECT_EQ(both(11, t, 100, 15), -1);
  EXPECT_EQ(both(11, t, 100, 16), -1);
  EXPECT_EQ(both(11, t, 100, 17), 108);
  EXPECT_EQ(both(11, t, 100, 18), 108 - 300);
  EXPECT_EQ(both(11, t, 100, 21), 108 - 300);
  EXPECT_EQ(both(11, t, 100, 22), 108 - 300 + 1000000);
  EXPECT_EQ(both(11, t, 100, 23), 108 - 300 + 1000000);  // past the end: last known line
  EXPECT_EQ(both(11, t, 100, kMinus1x32), 100);
  EXPECT_EQ(both(11, t, 100, kMinus1x64), 100);
  // Past the end after a no-location entry: the last known line, not -1.
  EXPECT_EQ(both(11, std::string(1, head(11, 1)) + bytes({1, 1}) + head(15, 1), 7, 5), 8);
}

TEST(PythonLines, EmptyTables) {
  for (int kind : {9, 10, 11}) {
    for (uint64_t p : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 33, kMinus1x32, kMinus1x64}) {
      EXPECT_EQ(both(kind, "", 77, p), 77);
    }
  }
}

TEST(PythonLines, UnknownKind) {
  EXPECT_EQ(both(0, "abc", 3, 0), 3);
  EXPECT_EQ(both(12, "abc", 3, 1), 3);
  EXPECT_EQ(both(-1, "", 3, kMinus1x64), 3);
}

TEST(PythonLines, TruncatedVarints) {
  // Long form cut inside its line-delta varint: reads stop at the end of the table.
  const std::string cut = std::string(1, head(14, 1)) + bytes({0x7f});  // continuation set
  EXPECT_EQ(both(11, cut, 10, 0), 10 - 31);
  EXPECT_EQ(both(11, cut, 10, 5), 10 - 31);
  EXPECT_EQ(both(11, std::string(1, head(13, 2)), 10, 0), 10);  // varint missing entirely
  // Endless continuation bytes: bits past 32 are dropped, no UB, bounded.
  std::string longv(1, head(13, 1));
  longv += std::string(1000, '\x7f');
  longv += head(10, 1);
  const int a = both(11, longv, 1, 0);
  EXPECT_EQ(both(11, longv, 1, 1), a);
  // Varint running into the next entry's header (bit 7 set bytes read as chunks).
  std::string into = std::string(1, head(13, 1)) + bytes({0x42}) + head(11, 1);
  both(11, into, 1, 0);
  both(11, into, 1, 1);
}

TEST(PythonLines, GarbageAndFuzzNoCrash) {
  std::mt19937_64 rng(12345);
  const auto t0 = std::chrono::steady_clock::now();
  for (int iter = 0; iter < 3000; ++iter) {
    std::string t(rng() % 64, '\0');
    for (auto& ch : t) ch = static_cast<char>(rng());
    const int kind = 9 + static_cast<int>(rng() % 3);
    const int first = static_cast<int>(rng() % 1000);
    const ls::PythonLineTable table(kind, t, first);
    for (int k = 0; k < 40; ++k) {
      uint64_t pos;
      switch (k % 4) {
        case 0: pos = rng() % 300; break;
        case 1: pos = rng(); break;
        case 2: pos = rng() % 0x100000000ull; break;
        default: pos = k; break;
      }
      const int a = ls::python_line(kind, t, first, pos);
      ASSERT_EQ(a, table.line(pos)) << "kind " << kind << " pos " << pos;
    }
  }
  // Garbage bytes with bit 7 clear for 3.11: first byte still used as an entry.
  both(11, std::string(100, '\x01'), 5, 0);
  both(11, std::string(100, '\x01'), 5, 1000);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

TEST(PythonLines, GiantTableAndPositionBoundedTime) {
  // 4 MiB of entries: one query is a single linear pass, lookups after decoding are O(log n).
  std::string t311;
  for (int i = 0; i < (1 << 20); ++i) t311 += head(11, 8) + bytes({1, 2});
  std::string t310(4 << 20, '\0');  // all zero-sized entries: must not loop or overrun
  std::string t39(4 << 20, '\xff');
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(both(11, t311, 0, 0), 1);
  EXPECT_EQ(both(11, t311, 0, 8ull * (1 << 20) - 1), 1 << 20);
  EXPECT_EQ(both(11, t311, 0, kMinus1x64 >> 1), 1 << 20);
  EXPECT_EQ(both(10, t310, 3, 0), 3);
  EXPECT_EQ(both(10, t310, 3, kMinus1x64 >> 2), 3);
  EXPECT_EQ(both(9, t39, 3, kMinus1x64 >> 1), 3 - (2 << 20));
  const ls::PythonLineTable big(11, t311, 0);
  for (uint64_t p = 0; p < 8ull * (1 << 20); p += 8) ASSERT_EQ(big.line(p), p / 8 + 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}
