// leakscope: report-time native symbolizer.
//
// Role: turns absolute instruction addresses recorded in a capture (FRAME_NATIVE ip) into
// function / source file / line, using the modules (MODULE records: path, load bias,
// build-id, PT_LOAD segments) the target had loaded. Backed by elfutils libdwfl/libdw:
// names from the ELF symbol tables (.symtab, else .dynsym), file:line and inlined callers
// from DWARF, separate debug info found through the build-id
// (/usr/lib/debug/.build-id/xx/rest.debug) by dwfl's standard find_debuginfo callback.
// (That callback also consults debuginfod, but only if the user set DEBUGINFOD_URLS.)
//
// A module whose file is missing, is not an ELF file, or whose build-id differs from the
// recorded one is never read for symbols: addresses in it come back with the module path and
// offset and an empty function name. Each module is opened at most once (lazily, on the
// first address that falls into it); results are cached per (address, is_return_address).
//
// Thread-safety: NOT thread-safe. One NativeSymbolizer must be used by one thread at a
// time (symbolize() mutates caches). Separate instances are independent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace leakscope::symbolize {

struct NativeFrame {                 // result for one address
  std::string function;              // demangled (C++ via abi::__cxa_demangle), "" if unknown
  std::string file;                  // source file from DWARF, "" if none
  int line = 0;                      // 0 if none
  std::string module;                // path of the ELF object
  uint64_t module_offset = 0;        // ELF virtual address inside the module (ip - load_bias)
  std::vector<NativeFrame> inlined;  // inlined callers, innermost first (may stay empty).
                                     // When ip is in inlined code, `function`/`file`/`line`
                                     // describe the innermost inlined function and each
                                     // entry here is a caller at its call site; the last
                                     // entry is the real (out-of-line) function.
};

// Demangles a C++ (Itanium ABI, "_Z...") symbol; returns anything else unchanged.
std::string demangle(const std::string& name);

class NativeSymbolizer {
 public:
  NativeSymbolizer();
  ~NativeSymbolizer();
  NativeSymbolizer(const NativeSymbolizer&) = delete;
  NativeSymbolizer& operator=(const NativeSymbolizer&) = delete;

  // Describe one loaded module as the target saw it. build_id = raw bytes (may be empty:
  // then the file's PT_LOAD headers must match `segments` instead). `segments` are
  // (vaddr, memsz) of the PT_LOAD headers, ELF virtual addresses; if empty, the file's own
  // PT_LOAD headers are used (only when the file can be opened and checked).
  // Returns a module index (dense, from 0). Never opens the file here.
  int add_module(const std::string& path, const std::string& build_id, uint64_t load_bias,
                 std::vector<std::pair<uint64_t, uint64_t>> segments);

  // Symbolize a runtime address `ip` (an absolute address in the target).
  // `is_return_address`: when true, look up ip-1 (the call instruction) for function/line;
  // module_offset is still ip - load_bias. Returns a frame with function "??" and module ""
  // when no module contains ip. Never throws.
  NativeFrame symbolize(uint64_t ip, bool is_return_address);

  // Number of modules whose file has been opened and accepted (for tests / diagnostics).
  size_t opened_module_count() const;
  // Number of cached results.
  size_t cache_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace leakscope::symbolize
