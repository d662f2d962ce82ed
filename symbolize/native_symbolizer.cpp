// leakscope: report-time native symbolizer (see native_symbolizer.h).
//
// Implementation notes:
// - One Dwfl session per module, the ELF reported at base 0 (ET_DYN with add_p_vaddr), so
//   dwfl addresses are ELF virtual addresses (= module_offset). Separate sessions keep
//   hostile or stale MODULE records (overlapping ranges, dlclose + dlopen at the same
//   address) from interfering with each other.
// - The runtime address -> module lookup is a sorted interval table built lazily from the
//   recorded PT_LOAD segments; the innermost (greatest start) containing range wins, ties go
//   to the module added last.
// - Inlined frames: per CU (lazily) a sorted table of the concrete subprograms' PC ranges;
//   from the subprogram containing the PC we descend through lexical blocks and inlined
//   subroutines that contain it. This avoids dwarf_getscopes' walk of the whole CU per
//   address.
//
// Thread-safety: NOT thread-safe (mutable caches, lazily opened dwfl sessions).
#include "symbolize/native_symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

namespace leakscope::symbolize {

std::string demangle(const std::string& name) {
  // Only Itanium C++ names; C names and anything odd are returned as they are. Very long
  // names are not demangled (the demangler recurses; the input comes from arbitrary files).
  if (name.size() < 3 || name[0] != '_' || name[1] != 'Z' || name.size() > (1u << 16)) {
    return name;
  }
  int status = 0;
  char* out = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  if (status == 0 && out != nullptr) {
    std::string r(out);
    std::free(out);
    return r;
  }
  std::free(out);
  return name;
}

namespace {

// Sorted set of half-open intervals [start, end) with a payload; finds the containing
// interval with the greatest start (ties: greatest payload). Overlaps are allowed.
class IntervalIndex {
 public:
  void clear() {
    items_.clear();
    max_end_.clear();
  }
  void add(uint64_t start, uint64_t end, uint64_t payload) {
    if (end > start) items_.push_back({start, end, payload});
  }
  void build() {
    std::sort(items_.begin(), items_.end(), [](const Item& a, const Item& b) {
      if (a.start != b.start) return a.start < b.start;
      return a.payload < b.payload;
    });
    max_end_.resize(items_.size());
    uint64_t m = 0;
    for (size_t i = 0; i < items_.size(); ++i) {
      m = std::max(m, items_[i].end);
      max_end_[i] = m;
    }
  }
  // Returns true and sets *payload when some interval contains addr.
  bool find(uint64_t addr, uint64_t* payload) const {
    auto it = std::upper_bound(items_.begin(), items_.end(), addr,
                               [](uint64_t a, const Item& b) { return a < b.start; });
    size_t i = static_cast<size_t>(it - items_.begin());
    while (i > 0) {
      --i;
      if (max_end_[i] <= addr) return false;  // nothing at or before i reaches addr
      if (items_[i].end > addr) {
        *payload = items_[i].payload;
        return true;
      }
    }
    return false;
  }
  bool empty() const { return items_.empty(); }

 private:
  struct Item {
    uint64_t start, end, payload;
  };
  std::vector<Item> items_;
  std::vector<uint64_t> max_end_;
};

char* g_debuginfo_path = nullptr;  // nullptr = dwfl default (":.debug:/usr/lib/debug")

const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &g_debuginfo_path,
};

constexpr size_t kMaxCacheEntries = size_t{1} << 22;  // ~4M results per flavour, then reset
constexpr int kMaxInlineDepth = 256;

std::string die_function_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  const char* s = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
  if (s == nullptr) s = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
  if (s != nullptr) return demangle(s);
  s = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
  return s != nullptr ? std::string(s) : std::string();
}

int clamp_line(uint64_t v) { return v > static_cast<uint64_t>(INT_MAX) ? 0 : static_cast<int>(v); }

// The call site (DW_AT_call_file / DW_AT_call_line) of an inlined_subroutine DIE.
void call_site(Dwarf_Die* cu, Dwarf_Die* inl, std::string* file, int* line) {
  Dwarf_Attribute attr;
  Dwarf_Word idx = 0;
  if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &attr), &idx) == 0) {
    Dwarf_Files* files = nullptr;
    size_t nfiles = 0;
    if (dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && idx < nfiles) {
      const char* f = dwarf_filesrc(files, idx, nullptr, nullptr);
      if (f != nullptr) *file = f;
    }
  }
  Dwarf_Word l = 0;
  if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &attr), &l) == 0) *line = clamp_line(l);
}

// Appends the inlined_subroutine DIEs under `parent` that contain pc, outermost first.
void collect_inlines(Dwarf_Die* parent, Dwarf_Addr pc, std::vector<Dwarf_Die>* chain, int depth) {
  if (depth > kMaxInlineDepth) return;
  Dwarf_Die child;
  if (dwarf_child(parent, &child) != 0) return;
  do {
    int tag = dwarf_tag(&child);
    if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_lexical_block &&
        tag != DW_TAG_try_block && tag != DW_TAG_catch_block) {
      continue;
    }
    if (dwarf_haspc(&child, pc) == 1) {
      if (tag == DW_TAG_inlined_subroutine) chain->push_back(child);
      collect_inlines(&child, pc, chain, depth + 1);
      return;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

// Collects concrete (code-bearing) subprograms of a CU, looking through namespaces and
// classes (clang nests definitions there), not into function bodies.
void collect_subprograms(Dwarf_Die* parent, std::vector<Dwarf_Die>* subs, IntervalIndex* idx,
                         int depth) {
  if (depth > kMaxInlineDepth) return;
  Dwarf_Die child;
  if (dwarf_child(parent, &child) != 0) return;
  do {
    int tag = dwarf_tag(&child);
    if (tag == DW_TAG_subprogram) {
      Dwarf_Addr base = 0, start = 0, end = 0;
      ptrdiff_t off = 0;
      bool any = false;
      int guard = 0;
      while ((off = dwarf_ranges(&child, off, &base, &start, &end)) > 0 && ++guard < 100000) {
        if (!any) {
          subs->push_back(child);
          any = true;
        }
        idx->add(start, end, subs->size() - 1);
      }
    } else if (tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
               tag == DW_TAG_structure_type || tag == DW_TAG_union_type ||
               tag == DW_TAG_module) {
      collect_subprograms(&child, subs, idx, depth + 1);
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

struct CuIndex {
  std::vector<Dwarf_Die> subprograms;
  IntervalIndex ranges;  // payload = index into subprograms
};

// A module's function symbols (from dwfl's choice of table: the separate debug file's or
// the main file's .symtab, else .dynsym + .gnu_debugdata), sorted for binary search.
// dwfl_module_addrname scans the whole table per call, which is far too slow for reports.
class SymbolTable {
 public:
  void build(Dwfl_Module* mod) {
    int n = dwfl_module_getsymtab(mod);
    for (int i = 1; i < n; ++i) {
      GElf_Sym sym;
      GElf_Addr addr = 0;
      GElf_Word shndx = 0;
      const char* name = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, nullptr, nullptr);
      if (name == nullptr || name[0] == '\0' || sym.st_shndx == SHN_UNDEF ||
          sym.st_shndx == SHN_ABS) {
        continue;
      }
      int type = GELF_ST_TYPE(sym.st_info);
      if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE) continue;
      int bind = GELF_ST_BIND(sym.st_info);
      int rank = bind == STB_GLOBAL ? 3 : bind == STB_WEAK ? 2 : 1;
      if (type == STT_NOTYPE) rank -= 1;  // prefer typed functions over plain labels
      syms_.push_back({addr, sym.st_size, name, rank});
    }
    std::sort(syms_.begin(), syms_.end(), [](const Sym& a, const Sym& b) {
      if (a.addr != b.addr) return a.addr < b.addr;
      return a.rank < b.rank;
    });
    for (size_t i = 0; i < syms_.size(); ++i) {
      if (syms_[i].size > 0) {
        uint64_t end = syms_[i].addr + syms_[i].size;
        if (end < syms_[i].addr) end = UINT64_MAX;
        sized_.add(syms_[i].addr, end, i);
      }
    }
    sized_.build();
    demangled_.resize(syms_.size());
    done_.assign(syms_.size(), false);
  }

  // The (demangled) name of the function containing addr, or "" if none.
  const std::string& lookup(uint64_t addr) {
    static const std::string kEmpty;
    uint64_t idx = 0;
    if (!sized_.find(addr, &idx)) {
      // No sized symbol contains addr: use a sizeless symbol (assembly labels) if it is the
      // nearest symbol at or below addr, as dwfl does.
      auto it = std::upper_bound(syms_.begin(), syms_.end(), addr,
                                 [](uint64_t a, const Sym& s) { return a < s.addr; });
      if (it == syms_.begin()) return kEmpty;
      size_t i = static_cast<size_t>(it - syms_.begin()) - 1;
      const uint64_t at = syms_[i].addr;
      for (;; --i) {
        if (syms_[i].addr != at) return kEmpty;
        if (syms_[i].size == 0) {
          idx = i;
          break;
        }
        if (i == 0) return kEmpty;
      }
    }
    if (!done_[idx]) {
      demangled_[idx] = demangle(syms_[idx].name);
      done_[idx] = true;
    }
    return demangled_[idx];
  }

 private:
  struct Sym {
    uint64_t addr, size;
    const char* name;  // owned by the Elf inside the module's dwfl session
    int rank;
  };
  std::vector<Sym> syms_;
  IntervalIndex sized_;  // payload = index into syms_
  std::vector<std::string> demangled_;
  std::vector<bool> done_;
};

struct Module {
  std::string path;
  std::string build_id;
  uint64_t load_bias = 0;
  std::vector<std::pair<uint64_t, uint64_t>> segments;

  enum class State { kUnopened, kOk, kFailed } state = State::kUnopened;
  Dwfl* dwfl = nullptr;
  Dwfl_Module* mod = nullptr;
  GElf_Addr dwfl_bias = 0;  // dwfl address = module_offset + dwfl_bias
  std::unordered_map<Dwarf_Off, CuIndex> cus;
  SymbolTable symbols;
  bool symbols_built = false;

  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  ~Module() {
    cus.clear();
    symbols = SymbolTable();
    if (dwfl != nullptr) dwfl_end(dwfl);
  }
};

// PT_LOAD headers of an ELF as (vaddr, memsz).
std::vector<std::pair<uint64_t, uint64_t>> load_segments(Elf* elf) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  size_t phnum = 0;
  if (elf == nullptr || elf_getphdrnum(elf, &phnum) != 0) return out;
  for (size_t i = 0; i < phnum && i < 65536; ++i) {
    GElf_Phdr mem;
    GElf_Phdr* ph = gelf_getphdr(elf, static_cast<int>(i), &mem);
    if (ph != nullptr && ph->p_type == PT_LOAD) out.emplace_back(ph->p_vaddr, ph->p_memsz);
  }
  return out;
}

// Opens the module's file once. Accepts it only if it is an ET_EXEC/ET_DYN ELF whose
// build-id equals the recorded one (or, with no recorded build-id, whose PT_LOAD headers
// match the recorded segments).
bool ensure_open(Module& m) {
  if (m.state == Module::State::kOk) return true;
  if (m.state == Module::State::kFailed) return false;
  m.state = Module::State::kFailed;

  struct stat st;
  // Regular files only: a FIFO or device would block or never end.
  if (m.path.empty() || m.path.find('\0') != std::string::npos ||
      ::stat(m.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return false;
  }
  Dwfl* dwfl = dwfl_begin(&kCallbacks);
  if (dwfl == nullptr) return false;
  dwfl_report_begin(dwfl);
  // fd -1: dwfl opens the file itself and owns the descriptor (closed by dwfl_end).
  Dwfl_Module* mod = dwfl_report_elf(dwfl, m.path.c_str(), m.path.c_str(), -1, 0, true);
  dwfl_report_end(dwfl, nullptr, nullptr);
  if (mod == nullptr) {
    dwfl_end(dwfl);
    return false;
  }
  GElf_Addr bias = 0;
  Elf* elf = dwfl_module_getelf(mod, &bias);
  GElf_Ehdr ehdr_mem;
  GElf_Ehdr* ehdr = elf != nullptr ? gelf_getehdr(elf, &ehdr_mem) : nullptr;
  bool ok = ehdr != nullptr && (ehdr->e_type == ET_EXEC || ehdr->e_type == ET_DYN);

  if (ok && !m.build_id.empty()) {
    const unsigned char* bits = nullptr;
    GElf_Addr note_vaddr = 0;
    int n = dwfl_module_build_id(mod, &bits, &note_vaddr);
    ok = n > 0 && static_cast<size_t>(n) == m.build_id.size() &&
         std::memcmp(bits, m.build_id.data(), m.build_id.size()) == 0;
  }
  std::vector<std::pair<uint64_t, uint64_t>> file_segs;
  if (ok) file_segs = load_segments(elf);
  if (ok && m.build_id.empty() && !m.segments.empty()) {
    // No build-id to compare: every recorded segment must be one of the file's PT_LOADs.
    for (const auto& s : m.segments) {
      if (s.second == 0) continue;
      if (std::find(file_segs.begin(), file_segs.end(), s) == file_segs.end()) {
        ok = false;
        break;
      }
    }
  }
  if (!ok) {
    dwfl_end(dwfl);
    return false;
  }
  if (m.segments.empty()) m.segments = std::move(file_segs);
  m.dwfl = dwfl;
  m.mod = mod;
  m.dwfl_bias = bias;
  m.state = Module::State::kOk;
  return true;
}

}  // namespace

struct NativeSymbolizer::Impl {
  std::vector<std::unique_ptr<Module>> modules;
  IntervalIndex index;  // runtime address -> module index
  bool index_dirty = true;
  std::unordered_map<uint64_t, NativeFrame> cache[2];  // [is_return_address]
  size_t opened = 0;

  void rebuild_index() {
    index.clear();
    for (size_t i = 0; i < modules.size(); ++i) {
      Module& m = *modules[i];
      if (m.segments.empty()) {
        // Nothing recorded: fall back to the file's own PT_LOADs (only if it checks out).
        if (ensure_open(m)) ++opened;
      }
      for (const auto& [vaddr, memsz] : m.segments) {
        if (memsz == 0) continue;
        uint64_t start = m.load_bias + vaddr;  // wraps like the target's arithmetic
        uint64_t end = start + memsz;
        if (end < start) end = UINT64_MAX;  // clamp overflow
        index.add(start, end, i);
      }
    }
    index.build();
    index_dirty = false;
  }

  static CuIndex& cu_index(Module& m, Dwarf_Die* cudie) {
    Dwarf_Off key = dwarf_dieoffset(cudie);
    auto& mcus = m.cus;
    auto it = mcus.find(key);
    if (it != mcus.end()) return it->second;
    CuIndex& ci = mcus[key];
    collect_subprograms(cudie, &ci.subprograms, &ci.ranges, 0);
    ci.ranges.build();
    return ci;
  }

  NativeFrame compute(uint64_t ip, bool is_return_address) {
    NativeFrame f;
    if (index_dirty) rebuild_index();
    uint64_t mi = 0;
    if (!index.find(ip, &mi) || mi >= modules.size()) {
      f.function = "??";
      return f;
    }
    Module& m = *modules[mi];
    f.module = m.path;
    f.module_offset = ip - m.load_bias;
    if (m.state == Module::State::kUnopened) {
      if (ensure_open(m)) ++opened;
    }
    if (m.state != Module::State::kOk) return f;

    uint64_t look = f.module_offset;
    if (is_return_address && look > 0) look -= 1;
    const GElf_Addr addr = look + m.dwfl_bias;

    if (!m.symbols_built) {
      m.symbols_built = true;
      m.symbols.build(m.mod);
    }
    std::string symname = m.symbols.lookup(addr);

    if (Dwfl_Line* line = dwfl_module_getsrc(m.mod, addr)) {
      int lineno = 0;
      const char* src = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
      if (src != nullptr) {
        f.file = src;
        f.line = lineno > 0 ? lineno : 0;
      }
    }

    // Inlined chain from DWARF scopes.
    std::vector<Dwarf_Die> chain;  // outermost first
    Dwarf_Die sub{};
    bool have_sub = false;
    Dwarf_Die cu{};
    Dwarf_Addr cubias = 0;
    if (Dwarf_Die* cudie = dwfl_module_addrdie(m.mod, addr, &cubias)) {
      cu = *cudie;
      const Dwarf_Addr pc = addr - cubias;
      CuIndex& ci = cu_index(m, &cu);
      uint64_t si = 0;
      if (ci.ranges.find(pc, &si) && si < ci.subprograms.size()) {
        sub = ci.subprograms[si];
        have_sub = true;
        collect_inlines(&sub, pc, &chain, 0);
      }
    }
    std::string outer = symname;
    if (outer.empty() && have_sub) outer = die_function_name(&sub);

    if (chain.empty()) {
      f.function = outer;
      return f;
    }
    // Innermost inlined function owns the line-table location; each inlined_subroutine's
    // call site is a location in its caller.
    std::reverse(chain.begin(), chain.end());  // innermost first
    f.function = die_function_name(&chain[0]);
    f.inlined.reserve(chain.size());
    for (size_t k = 0; k < chain.size(); ++k) {
      NativeFrame caller;
      caller.function = k + 1 < chain.size() ? die_function_name(&chain[k + 1]) : outer;
      call_site(&cu, &chain[k], &caller.file, &caller.line);
      caller.module = f.module;
      caller.module_offset = f.module_offset;
      f.inlined.push_back(std::move(caller));
    }
    return f;
  }
};

NativeSymbolizer::NativeSymbolizer() : impl_(std::make_unique<Impl>()) {}
NativeSymbolizer::~NativeSymbolizer() = default;

int NativeSymbolizer::add_module(const std::string& path, const std::string& build_id,
                                 uint64_t load_bias,
                                 std::vector<std::pair<uint64_t, uint64_t>> segments) {
  auto m = std::make_unique<Module>();
  m->path = path;
  m->build_id = build_id;
  m->load_bias = load_bias;
  m->segments = std::move(segments);
  impl_->modules.push_back(std::move(m));
  impl_->index_dirty = true;
  impl_->cache[0].clear();  // an earlier "??" (or a different module) may now be wrong
  impl_->cache[1].clear();
  return static_cast<int>(impl_->modules.size() - 1);
}

NativeFrame NativeSymbolizer::symbolize(uint64_t ip, bool is_return_address) {
  try {
    auto& cache = impl_->cache[is_return_address ? 1 : 0];
    auto it = cache.find(ip);
    if (it != cache.end()) return it->second;
    NativeFrame f = impl_->compute(ip, is_return_address);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.emplace(ip, f);
    return f;
  } catch (...) {
    NativeFrame f;
    f.function = "??";
    return f;
  }
}

size_t NativeSymbolizer::opened_module_count() const { return impl_->opened; }

size_t NativeSymbolizer::cache_size() const {
  return impl_->cache[0].size() + impl_->cache[1].size();
}

}  // namespace leakscope::symbolize
