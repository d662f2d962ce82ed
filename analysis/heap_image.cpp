// A copy of a stopped process: see heap_image.h.
#include "analysis/heap_image.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace leakscope::analysis {

ImageBytes::~ImageBytes() {
  if (map_) munmap(map_, map_size_);
}

// Huge pages, aligned to 2 MiB: on a virtual machine a first touch costs about 10 us per 4 KiB
// page, in user and kernel mode alike (bench/README.md, findleaks): 2.5 s per GiB copied. With
// huge pages faulted in from user space beforehand, the kernel's copy into them runs at about
// 6 GiB/s, and reading them back costs nothing more.
void ImageBytes::reserve(size_t n, bool populate) {
  if (n <= cap_) return;
  constexpr size_t kHuge = 2u << 20;
  size_t cap = populate ? n : std::max(n, cap_ + cap_ / 2);
  cap = (cap + kHuge - 1) & ~(kHuge - 1);
  size_t map_size = cap + kHuge;
  void* m = mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  auto* p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(m) + kHuge - 1) & ~(kHuge - 1));
  madvise(p, cap, MADV_HUGEPAGE);
  if (data_) std::memcpy(p, data_, cap_);
  if (populate) std::memset(p + cap_, 0, cap - cap_);
  if (map_) munmap(map_, map_size_);
  map_ = m;
  map_size_ = map_size;
  data_ = p;
  cap_ = cap;
}

uint8_t* HeapImage::add_region(uint64_t lo, size_t n) {
  bytes_.reserve(used_ + n);
  if (!regions_.empty() && regions_.back().hi == lo && regions_.back().off + (lo - regions_.back().lo) == used_) {
    regions_.back().hi = lo + n;  // continues the last region: one region, contiguous bytes
  } else {
    regions_.push_back(Region{lo, lo + n, used_});
  }
  uint8_t* p = bytes_.data() + used_;
  used_ += n;
  last_add_ = n;
  return p;
}

void HeapImage::shrink_last_region(size_t n) {
  if (regions_.empty()) return;
  Region& r = regions_.back();
  size_t asked = last_add_;
  if (n >= asked) return;
  used_ -= asked - n;
  r.hi -= asked - n;
  if (r.hi == r.lo) regions_.pop_back();
}

bool HeapImage::finish() {
  std::sort(regions_.begin(), regions_.end(), [](const Region& a, const Region& b) { return a.lo < b.lo; });
  last_ = 0;
  for (size_t i = 1; i < regions_.size(); ++i)
    if (regions_[i].lo < regions_[i - 1].hi) return false;
  return true;
}

const HeapImage::Region* HeapImage::region_of(uint64_t addr) const {
  if (regions_.empty()) return nullptr;
  if (last_ < regions_.size() && addr >= regions_[last_].lo && addr < regions_[last_].hi) return &regions_[last_];
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](uint64_t a, const Region& r) { return a < r.lo; });
  if (it == regions_.begin()) return nullptr;
  --it;
  if (addr >= it->hi) return nullptr;
  last_ = static_cast<size_t>(it - regions_.begin());
  return &*it;
}

const uint8_t* HeapImage::at(uint64_t addr, size_t n) const {
  const Region* r = region_of(addr);
  if (!r || n > r->hi - addr) return nullptr;
  return bytes_.data() + r->off + (addr - r->lo);
}

bool HeapImage::read(uint64_t addr, void* out, size_t n) const {
  const uint8_t* p = at(addr, n);
  if (!p) return false;
  std::memcpy(out, p, n);
  return true;
}

uint64_t HeapImage::word(uint64_t addr) const {
  uint64_t v = 0;
  return read(addr, &v, sizeof v) ? v : 0;
}

}  // namespace leakscope::analysis
