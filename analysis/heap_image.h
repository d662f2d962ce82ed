// A copy of a stopped process, as `findleaks` and `heapdump` take it (docs/findleaks.md): its
// threads and registers, memory map, the writable data ranges of its modules, the agent's
// scan descriptor address, and the bytes of its memory (present pages of every writable
// mapping, read-only data of its ELF modules). Filled by cli/stop_world.cpp from a live
// process, or by analysis/heap_dump.cpp from a dump file. Reads of addresses that were not
// copied fail (or give 0): the model never trusts an address. Not thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capture/scan_abi.h"

namespace leakscope::analysis {

// user_regs_struct, in <sys/user.h> order (x86-64).
inline constexpr size_t kRegCount = 27;
inline constexpr size_t kRegRbp = 4, kRegRbx = 5, kRegRip = 16, kRegRsp = 19, kRegFsBase = 21;
inline constexpr size_t kRegR15 = 0, kRegR14 = 1, kRegR13 = 2, kRegR12 = 3;

struct ImageThread {
  uint64_t tid = 0;
  uint64_t regs[kRegCount] = {};
};
struct ImageMapping {
  uint64_t lo = 0, hi = 0, offset = 0;
  std::string perms, path;  // "rw-p", "/usr/lib/.../libc.so.6" or "" or "[heap]"
  bool writable() const { return perms.size() > 1 && perms[1] == 'w'; }
};
// An ELF module's ranges that are roots: PT_LOAD segments with PF_W and PT_GNU_RELRO.
struct ImageModule {
  std::string path;
  std::vector<capture::ScanRange> data;
};

// Bytes of memory, in one buffer (mmap'd: gigabytes without zeroing them first).
class ImageBytes {
 public:
  ImageBytes() = default;
  ~ImageBytes();
  ImageBytes(const ImageBytes&) = delete;
  ImageBytes& operator=(const ImageBytes&) = delete;
  // Room for `n` bytes (existing content kept), its pages faulted in up front when `populate`
  // (page faults are what copying a process costs most on a virtual machine). Throws
  // std::bad_alloc.
  void reserve(size_t n, bool populate = false);
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t capacity() const { return cap_; }

 private:
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint8_t* data_ = nullptr;  // in map_, aligned for huge pages
  size_t cap_ = 0;
};

class HeapImage {
 public:
  struct Region {
    uint64_t lo, hi;  // [lo, hi) copied, at bytes[off]
    size_t off;
  };
  uint64_t pid = 0;
  uint64_t descriptor = 0;       // address of the agent's ScanDescriptor
  uint64_t taken_unix_ns = 0;    // when the copy was taken
  std::vector<ImageThread> threads;
  std::vector<ImageMapping> maps;
  std::vector<ImageModule> modules;
  std::vector<std::string> warnings;  // what the copy could not do (one line each)

  // Room for n bytes of regions in all, faulted in now (before a process is stopped).
  void reserve(size_t n) { bytes_.reserve(n, true); }
  // The same without faulting it in (a dump being read: decompression touches it anyway).
  void reserve_bytes(size_t n) { bytes_.reserve(n, false); }
  // Appends a region of n bytes at address lo (joined to the last one when it continues it);
  // returns where to write them. Regions must not overlap; call finish() once all are added.
  uint8_t* add_region(uint64_t lo, size_t n);
  // Drops the tail of what the last add_region asked for: only `n` of its bytes were copied.
  void shrink_last_region(size_t n);
  // Sorts the regions; false when two overlap (a hostile dump).
  bool finish();
  const std::vector<Region>& regions() const { return regions_; }
  size_t bytes_size() const { return used_; }
  const uint8_t* region_bytes(const Region& r) const { return bytes_.data() + r.off; }

  // The copied bytes [addr, addr + n), or nullptr unless one region holds all of them.
  const uint8_t* at(uint64_t addr, size_t n) const;
  bool read(uint64_t addr, void* out, size_t n) const;
  uint64_t word(uint64_t addr) const;  // 0 when not copied
  // The region holding addr, or nullptr.
  const Region* region_of(uint64_t addr) const;

 private:
  std::vector<Region> regions_;
  ImageBytes bytes_;
  size_t used_ = 0, last_add_ = 0;
  mutable size_t last_ = 0;
};

}  // namespace leakscope::analysis
