// See own_containers.h.
#include "agent/own_containers.h"

namespace leakscope::agent {

bool IndexMap::rehash(size_t new_slots) {
  auto* k = static_cast<uint64_t*>(own_map_huge(new_slots * sizeof(uint64_t)));
  auto* v = static_cast<uint32_t*>(own_map_huge(new_slots * sizeof(uint32_t)));
  if (!k || !v) {
    if (k) own_unmap(k, new_slots * sizeof(uint64_t));
    if (v) own_unmap(v, new_slots * sizeof(uint32_t));
    failed = true;
    return false;
  }
  IndexMap fresh;
  fresh.keys = k;
  fresh.vals = v;
  fresh.slots = new_slots;
  for (size_t i = 0; keys && i < slots; ++i) {
    if (!keys[i]) continue;
    size_t j = fresh.home(keys[i]);
    while (k[j]) j = fresh.next(j);
    k[j] = keys[i];
    v[j] = vals[i];
  }
  const size_t kept = used;
  release();
  keys = k;
  vals = v;
  slots = new_slots;
  used = kept;
  return true;
}

bool IndexMap::insert(uint64_t key, uint32_t val) {
  if ((!keys || full(used + 1, slots)) && !rehash(keys ? slots * 2 : 1u << 16)) return false;
  size_t i = home(key);
  while (keys[i]) i = next(i);
  keys[i] = key;
  vals[i] = val;
  ++used;
  return true;
}

void IndexMap::release() {
  if (keys) {
    own_unmap(keys, slots * sizeof(uint64_t));
    own_unmap(vals, slots * sizeof(uint32_t));
  }
  keys = nullptr;
  vals = nullptr;
  slots = 0;
  used = 0;
}

}  // namespace leakscope::agent
