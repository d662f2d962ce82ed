// Thinning rule of aggregate captures (docs/architecture.md, "Bounded captures").
// A snapshot taken at `t` (ns since start) stays at full resolution while its age (now - t)
// is under `full`. Older, it shares a bucket of width interval * 2^k with its neighbours,
// k = 1 + floor(log2(age / full)), and only the bucket's last state is kept: twice as coarse
// each time the age doubles, so a run of length T keeps about full/interval * (1 + log2(T/full)/2)
// snapshots. Buckets are aligned to multiples of their width from the start, so a coarser
// bucket is a union of finer ones and thinning again later only merges further.
#pragma once
#include <cstdint>

namespace leakscope::capture {

struct ThinBucket {
  uint64_t width = 0;  // 0: kept as is
  uint64_t index = 0;  // t / width
  bool operator==(const ThinBucket&) const = default;
};

inline ThinBucket thin_bucket(uint64_t t, uint64_t now, uint64_t interval, uint64_t full) {
  if (interval == 0 || full == 0 || t >= now || now - t < full) return {};
  uint64_t age = now - t;
  unsigned k = 1;
  while (k < 40 && age / 2 >= (full << (k - 1))) ++k;  // age >= full * 2^k -> coarser
  uint64_t width = interval << k;
  return {width, t / width};
}

}  // namespace leakscope::capture
