// leakscope's own memory in the target: every mapping the agent makes goes through own_map,
// which keeps a list of them, so a reachability scan (docs/findleaks.md) can leave the agent's
// tables out (they hold the address of every live block). OwnAllocator puts the writer
// thread's containers (live tables, mapping table) there instead of the program's heap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>

#include "capture/scan_abi.h"

namespace leakscope::agent {

// mmap'd read-write memory (the real mmap, never the hooked one), listed; nullptr on failure.
// Thread-safe and allocation-free.
void* own_map(size_t n);
void own_unmap(void* p, size_t n);
// The same, with a hint for huge pages when it is big: for tables probed at random.
void* own_map_huge(size_t n);
// Copies up to `max` listed ranges into `out`; returns how many (writer thread).
size_t own_ranges(capture::ScanRange* out, size_t max);

// Small blocks for the writer thread's node containers: power-of-two classes carved from
// listed 256 KiB chunks; large ones are mappings of their own. Writer thread only.
void* own_alloc(size_t n);
void own_free(void* p, size_t n);
// Detach: every small-block chunk unmapped (call only once nothing allocated is in use).
void own_pool_release();
[[noreturn]] void own_out_of_memory();

template <typename T>
struct OwnAllocator {
  using value_type = T;
  OwnAllocator() = default;
  template <typename U>
  OwnAllocator(const OwnAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = own_alloc(n * sizeof(T));
    if (!p) own_out_of_memory();  // as operator new does without exceptions
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) { own_free(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const OwnAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const OwnAllocator<U>&) const { return false; }
};

}  // namespace leakscope::agent
