// leakscope: unit tests for symbolize/native_symbolizer (report-time native symbolizer).
//
// The test binary symbolizes its own functions: dl_iterate_phdr gives every loaded object's
// load bias, PT_LOAD segments and GNU build-id note, which are fed to add_module exactly as
// the agent records them in MODULE records. Expected lines come from __LINE__ inside the
// functions. Single-threaded (the symbolizer is not thread-safe).
#include "symbolize/native_symbolizer.h"

#include <dlfcn.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#if defined(__clang__)
#define LS_TEST_NOIPA __attribute__((noinline, used))
#else
#define LS_TEST_NOIPA __attribute__((noipa, used))
#endif

namespace ns {

volatile int g_sink = 0;
int g_leaf_line = 0;
int g_twice_line = 0;
int g_inl_line = 0;
int g_outer_call_line = 0;
uintptr_t g_leaf_ra = 0;
uintptr_t g_twice_ra = 0;
uintptr_t g_inl_ra = 0;

LS_TEST_NOIPA void record_ra(uintptr_t* out) {
  *out = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
}

constexpr int kLeafDeclLine = __LINE__ + 1;
LS_TEST_NOIPA int leaf_fn(int x) {
  g_leaf_line = __LINE__; record_ra(&g_leaf_ra);
  return x * 3 + g_sink;
}

template <typename T>
LS_TEST_NOIPA T twice(T v) {
  g_twice_line = __LINE__; record_ra(&g_twice_ra);
  return v + v + static_cast<T>(g_sink);
}
template int twice<int>(int);

__attribute__((always_inline)) inline int inl_helper(int x) {
  g_inl_line = __LINE__; record_ra(&g_inl_ra);
  return x + g_sink;
}

LS_TEST_NOIPA int outer_fn(int x) {
  g_outer_call_line = __LINE__; int r = inl_helper(x);
  return r * 2 + g_sink;
}

}  // namespace ns

namespace {

using leakscope::symbolize::demangle;
using leakscope::symbolize::NativeFrame;
using leakscope::symbolize::NativeSymbolizer;
using Segments = std::vector<std::pair<uint64_t, uint64_t>>;

struct Loaded {
  std::string path;
  std::string build_id;
  uint64_t bias = 0;
  Segments segments;
  Segments exec_segments;
};

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string read_build_id(const dl_phdr_info* info, const ElfW(Phdr)* ph) {
  const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph->p_vaddr);
  size_t left = ph->p_memsz;
  auto align4 = [](size_t v) { return (v + 3) & ~size_t{3}; };
  while (left >= sizeof(ElfW(Nhdr))) {
    ElfW(Nhdr) nh;
    std::memcpy(&nh, p, sizeof nh);
    size_t name_sz = align4(nh.n_namesz), desc_sz = align4(nh.n_descsz);
    size_t total = sizeof nh + name_sz + desc_sz;
    if (total > left) break;
    const unsigned char* name = p + sizeof nh;
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
      return std::string(reinterpret_cast<const char*>(name + name_sz), nh.n_descsz);
    }
    p += total;
    left -= total;
  }
  return {};
}

std::vector<Loaded> loaded_modules() {
  std::vector<Loaded> out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) -> int {
        Loaded m;
        m.path = (info->dlpi_name && info->dlpi_name[0]) ? info->dlpi_name : self_exe();
        m.bias = info->dlpi_addr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
          if (ph->p_type == PT_LOAD) {
            m.segments.emplace_back(ph->p_vaddr, ph->p_memsz);
            if (ph->p_flags & PF_X) m.exec_segments.emplace_back(ph->p_vaddr, ph->p_memsz);
          } else if (ph->p_type == PT_NOTE && m.build_id.empty()) {
            m.build_id = read_build_id(info, ph);
          }
        }
        static_cast<std::vector<Loaded>*>(arg)->push_back(std::move(m));
        return 0;
      },
      &out);
  return out;
}

const Loaded* containing(const std::vector<Loaded>& mods, uintptr_t addr) {
  for (const auto& m : mods) {
    for (const auto& [vaddr, memsz] : m.segments) {
      uint64_t start = m.bias + vaddr;
      if (addr >= start && addr - start < memsz) return &m;
    }
  }
  return nullptr;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string basename_of(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

void add_all(NativeSymbolizer& s, const std::vector<Loaded>& mods) {
  for (const auto& m : mods) s.add_module(m.path, m.build_id, m.bias, m.segments);
}

uintptr_t addr_of(const void* p) { return reinterpret_cast<uintptr_t>(p); }
template <typename F>
uintptr_t fn_addr(F* f) { return reinterpret_cast<uintptr_t>(reinterpret_cast<void*>(f)); }

constexpr const char* kThisFile = "native_symbolizer_test.cpp";

class NativeSymbolizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Run the functions so the recorded return addresses and lines are set.
    int (*volatile leaf)(int) = &ns::leaf_fn;
    int (*volatile tw)(int) = &ns::twice<int>;
    int (*volatile outer)(int) = &ns::outer_fn;
    ASSERT_EQ(leaf(2), 6);
    ASSERT_EQ(tw(5), 10);
    ASSERT_EQ(outer(1), 2);
    mods_ = loaded_modules();
    exe_ = containing(mods_, fn_addr(&ns::leaf_fn));
    ASSERT_NE(exe_, nullptr);
    ASSERT_EQ(exe_->path, self_exe());
    ASSERT_FALSE(exe_->build_id.empty()) << "test binary has no GNU build-id note";
  }
  std::vector<Loaded> mods_;
  const Loaded* exe_ = nullptr;
};

TEST(Demangle, CppAndC) {
  EXPECT_EQ(demangle("_ZN2ns7leaf_fnEi"), "ns::leaf_fn(int)");
  EXPECT_EQ(demangle("getpid"), "getpid");
  EXPECT_EQ(demangle("_Z"), "_Z");
  EXPECT_EQ(demangle("_Zgarbage!!"), "_Zgarbage!!");
  EXPECT_EQ(demangle(""), "");
}

TEST_F(NativeSymbolizerTest, FunctionEntryInTestBinary) {
  NativeSymbolizer s;
  add_all(s, mods_);
  uintptr_t ip = fn_addr(&ns::leaf_fn);
  NativeFrame f = s.symbolize(ip, false);
  EXPECT_NE(f.function.find("ns::leaf_fn"), std::string::npos) << f.function;
  EXPECT_TRUE(ends_with(f.file, kThisFile)) << f.file;
  EXPECT_EQ(f.line, ns::kLeafDeclLine);
  EXPECT_EQ(f.module, exe_->path);
  EXPECT_EQ(f.module_offset, ip - exe_->bias);
  EXPECT_TRUE(f.inlined.empty());
}

TEST_F(NativeSymbolizerTest, ReturnAddressLooksUpCallInstruction) {
  NativeSymbolizer s;
  add_all(s, mods_);
  NativeFrame f = s.symbolize(ns::g_leaf_ra, true);
  EXPECT_NE(f.function.find("ns::leaf_fn"), std::string::npos) << f.function;
  EXPECT_TRUE(ends_with(f.file, kThisFile)) << f.file;
  EXPECT_EQ(f.line, ns::g_leaf_line);
  EXPECT_EQ(f.module_offset, ns::g_leaf_ra - exe_->bias);  // not ip-1
  // The callee itself resolves too.
  NativeFrame r = s.symbolize(fn_addr(&ns::record_ra), false);
  EXPECT_NE(r.function.find("ns::record_ra"), std::string::npos) << r.function;
}

TEST_F(NativeSymbolizerTest, TemplateFunction) {
  NativeSymbolizer s;
  add_all(s, mods_);
  NativeFrame f = s.symbolize(ns::g_twice_ra, true);
  EXPECT_NE(f.function.find("ns::twice<int>"), std::string::npos) << f.function;
  EXPECT_TRUE(ends_with(f.file, kThisFile)) << f.file;
  EXPECT_EQ(f.line, ns::g_twice_line);
}

TEST_F(NativeSymbolizerTest, InlinedCallers) {
  NativeSymbolizer s;
  add_all(s, mods_);
  NativeFrame f = s.symbolize(ns::g_inl_ra, true);
  EXPECT_NE(f.function.find("ns::inl_helper"), std::string::npos) << f.function;
  EXPECT_TRUE(ends_with(f.file, kThisFile)) << f.file;
  EXPECT_EQ(f.line, ns::g_inl_line);
  ASSERT_EQ(f.inlined.size(), 1u);
  const NativeFrame& caller = f.inlined[0];
  EXPECT_NE(caller.function.find("ns::outer_fn"), std::string::npos) << caller.function;
  EXPECT_TRUE(ends_with(caller.file, kThisFile)) << caller.file;
  EXPECT_EQ(caller.line, ns::g_outer_call_line);
  EXPECT_EQ(caller.module, exe_->path);
}

TEST_F(NativeSymbolizerTest, LibcFunction) {
  void* h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(h, nullptr);
  void* sym = dlsym(h, "getpid");
  ASSERT_NE(sym, nullptr);
  const Loaded* libc = containing(mods_, addr_of(sym));
  ASSERT_NE(libc, nullptr);

  NativeSymbolizer s;
  add_all(s, mods_);
  NativeFrame f = s.symbolize(addr_of(sym), false);
  EXPECT_NE(f.function.find("getpid"), std::string::npos) << f.function;
  EXPECT_EQ(basename_of(f.module), "libc.so.6") << f.module;
  EXPECT_EQ(f.module, libc->path);
  EXPECT_EQ(f.module_offset, addr_of(sym) - libc->bias);
  dlclose(h);
}

TEST_F(NativeSymbolizerTest, AddressOutsideEveryModule) {
  NativeSymbolizer s;
  add_all(s, mods_);
  for (uint64_t ip : {uint64_t{0}, uint64_t{0x10}, UINT64_MAX, UINT64_MAX - 1}) {
    ASSERT_EQ(containing(mods_, ip), nullptr);
    NativeFrame f = s.symbolize(ip, false);
    EXPECT_EQ(f.function, "??");
    EXPECT_EQ(f.module, "");
    EXPECT_EQ(f.line, 0);
    EXPECT_EQ(s.symbolize(ip, true).function, "??");
  }
}

TEST_F(NativeSymbolizerTest, WrongBuildIdGivesModuleButNoFunction) {
  std::string wrong = exe_->build_id;
  wrong[0] = static_cast<char>(wrong[0] ^ 0x5a);
  std::string shorter = exe_->build_id.substr(0, exe_->build_id.size() - 1);
  for (const std::string& bid : {wrong, shorter}) {
    NativeSymbolizer s;
    s.add_module(exe_->path, bid, exe_->bias, exe_->segments);
    uintptr_t ip = fn_addr(&ns::leaf_fn);
    NativeFrame f = s.symbolize(ip, false);
    EXPECT_EQ(f.function, "");
    EXPECT_EQ(f.file, "");
    EXPECT_EQ(f.line, 0);
    EXPECT_EQ(f.module, exe_->path);
    EXPECT_EQ(f.module_offset, ip - exe_->bias);
    EXPECT_EQ(s.opened_module_count(), 0u);
  }
}

TEST_F(NativeSymbolizerTest, NoBuildIdChecksSegments) {
  uintptr_t ip = fn_addr(&ns::leaf_fn);
  {
    NativeSymbolizer s;  // no build-id, matching segments: accepted
    s.add_module(exe_->path, "", exe_->bias, exe_->segments);
    EXPECT_NE(s.symbolize(ip, false).function.find("ns::leaf_fn"), std::string::npos);
  }
  {
    NativeSymbolizer s;  // no build-id, segments that are not the file's: rejected
    Segments segs = exe_->segments;
    segs[0].second += 0x1000;
    s.add_module(exe_->path, "", exe_->bias, segs);
    NativeFrame f = s.symbolize(ip, false);
    EXPECT_EQ(f.function, "");
    EXPECT_EQ(f.module, exe_->path);
  }
  {
    NativeSymbolizer s;  // right build-id, no segments recorded: the file's PT_LOADs are used
    s.add_module(exe_->path, exe_->build_id, exe_->bias, {});
    NativeFrame f = s.symbolize(ip, false);
    EXPECT_NE(f.function.find("ns::leaf_fn"), std::string::npos) << f.function;
    EXPECT_EQ(f.module_offset, ip - exe_->bias);
  }
}

TEST(NativeSymbolizerHostile, MissingAndBogusFiles) {
  NativeSymbolizer s;
  const uint64_t base = uint64_t{1} << 44;
  const char* paths[] = {"/nonexistent/dir/libnope.so", "", "/", "/dev/zero", "/proc/self/maps",
                         "/etc/hostname", "relative/path.so"};
  int i = 0;
  for (const char* p : paths) {
    int idx = s.add_module(p, std::string("\x01\x02\x03", 3), base + uint64_t(i) * 0x100000,
                           {{0, 0x1000}, {0x2000, 0x10}});
    EXPECT_EQ(idx, i);
    ++i;
  }
  for (int k = 0; k < i; ++k) {
    uint64_t ip = base + uint64_t(k) * 0x100000 + 0x10;
    NativeFrame f = s.symbolize(ip, true);
    EXPECT_EQ(f.module, paths[k]);
    EXPECT_EQ(f.module_offset, 0x10u);
    EXPECT_EQ(f.function, "");
    EXPECT_EQ(f.line, 0);
    // Gap between the two segments belongs to no module.
    EXPECT_EQ(s.symbolize(base + uint64_t(k) * 0x100000 + 0x1800, false).function, "??");
    EXPECT_EQ(s.symbolize(base + uint64_t(k) * 0x100000 + 0x2008, false).module, paths[k]);
  }
  EXPECT_EQ(s.opened_module_count(), 0u);
}

TEST(NativeSymbolizerHostile, OverflowingAndEmptySegments) {
  NativeSymbolizer s;
  s.add_module("/nonexistent/a.so", "", UINT64_MAX - 0x10, {{0, 0x1000}});  // wraps: clamped
  s.add_module("/nonexistent/b.so", "", 0x5000, {});                         // covers nothing
  s.add_module("/nonexistent/c.so", "", 0x9000, {{0, 0}});                   // empty segment
  s.add_module("/nonexistent/d.so", "", 0, {{UINT64_MAX, UINT64_MAX}});
  NativeFrame f = s.symbolize(UINT64_MAX - 1, true);
  EXPECT_EQ(f.module, "/nonexistent/a.so");
  EXPECT_EQ(f.module_offset, 0xfu);
  EXPECT_EQ(s.symbolize(0x5000, false).function, "??");
  EXPECT_EQ(s.symbolize(0x9000, false).function, "??");
  EXPECT_EQ(s.symbolize(0, true).function, "??");
  EXPECT_EQ(s.symbolize(UINT64_MAX - 0x10, false).module_offset, 0u);
  EXPECT_EQ(s.symbolize(UINT64_MAX - 0x11, false).function, "??");
  // Ranges are half-open and clamped, so the very last address is never covered.
  EXPECT_EQ(s.symbolize(UINT64_MAX, true).function, "??");
}

TEST_F(NativeSymbolizerTest, OverlappingModulesPickInnermost) {
  NativeSymbolizer s;
  // A bogus module spanning everything does not hide the real one inside it.
  s.add_module("/nonexistent/huge.so", "", 0, {{0, UINT64_MAX}});
  add_all(s, mods_);
  NativeFrame f = s.symbolize(fn_addr(&ns::leaf_fn), false);
  EXPECT_NE(f.function.find("ns::leaf_fn"), std::string::npos) << f.function;
  EXPECT_EQ(s.symbolize(0x10, false).module, "/nonexistent/huge.so");
}

TEST_F(NativeSymbolizerTest, CacheAndLateModules) {
  NativeSymbolizer s;
  uintptr_t ip = fn_addr(&ns::leaf_fn);
  EXPECT_EQ(s.symbolize(ip, false).function, "??");  // no modules yet
  add_all(s, mods_);                                 // must invalidate the cached "??"
  NativeFrame a = s.symbolize(ip, false);
  EXPECT_NE(a.function.find("ns::leaf_fn"), std::string::npos);
  size_t cached = s.cache_size();
  NativeFrame b = s.symbolize(ip, false);
  EXPECT_EQ(s.cache_size(), cached);
  EXPECT_EQ(a.function, b.function);
  EXPECT_EQ(a.file, b.file);
  EXPECT_EQ(a.line, b.line);
  EXPECT_EQ(s.opened_module_count(), 1u);  // only the test binary was opened
}

TEST_F(NativeSymbolizerTest, ManyDistinctAddressesAreFast) {
  NativeSymbolizer s;
  add_all(s, mods_);
  std::vector<uint64_t> ips;
  for (const Loaded* m : {exe_, containing(mods_, fn_addr(&getpid))}) {
    ASSERT_NE(m, nullptr);
    for (const auto& [vaddr, memsz] : m->exec_segments) {
      uint64_t step = std::max<uint64_t>(1, memsz / 50000);
      for (uint64_t off = 0; off < memsz && ips.size() < 100000 * (m == exe_ ? 1u : 2u);
           off += step) {
        ips.push_back(m->bias + vaddr + off);
      }
    }
  }
  ASSERT_GE(ips.size(), 50000u);
  auto t0 = std::chrono::steady_clock::now();
  size_t named = 0, with_line = 0;
  for (uint64_t ip : ips) {
    NativeFrame f = s.symbolize(ip, true);
    named += !f.function.empty() && f.function != "??";
    with_line += f.line > 0;
  }
  auto t1 = std::chrono::steady_clock::now();
  for (uint64_t ip : ips) s.symbolize(ip, true);  // all cached now
  auto t2 = std::chrono::steady_clock::now();
  double first = std::chrono::duration<double>(t1 - t0).count();
  double second = std::chrono::duration<double>(t2 - t1).count();
  std::printf("%zu addresses: %.3f s cold, %.3f s cached; %zu named, %zu with lines\n",
              ips.size(), first, second, named, with_line);
  EXPECT_GT(named, ips.size() / 2);
  EXPECT_GT(with_line, 0u);
  EXPECT_EQ(s.cache_size(), ips.size());
  EXPECT_LT(first, 10.0);
  EXPECT_LT(second, first + 1.0);
}

}  // namespace
