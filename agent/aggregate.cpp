// Aggregate mode: see aggregate.h. Decodes the same records the events mode writes
// (format.md, P and N streams, capture/events.h) with the same delta state, so both modes
// share the hot path. Its tables live in the agent's own memory (own_memory.h): a
// reachability scan must not take them for the program's pointers.
#include "agent/aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <vector>

#include "agent/agent.h"
#include "agent/own_memory.h"
#include "capture/events.h"
#include "capture/live_table.h"

namespace leakscope::agent {
namespace {

constexpr uint8_t kLayerPython = 0, kLayerRaw = 1, kLayerMalloc = 2, kLayerMmap = 3;

using LiveTable = capture::BasicLiveTable<OwnAllocator<capture::LiveEntry>>;
using MapTable = capture::BasicMapTable<OwnAllocator<std::pair<const uint64_t, capture::LiveEntry>>>;
using ArenaTable = std::map<uint64_t, uint64_t, std::less<uint64_t>, OwnAllocator<std::pair<const uint64_t, uint64_t>>>;

struct Site {
  double bytes = 0, count = 0;
  double written = -1;  // bytes in the last snapshot that carried this site (-1: never)
  bool dirty = false;
};

// Young blocks: a direct-mapped array in front of the live table. Most blocks die young, so
// their free finds them here and never touches the table; a block moves into the table only
// when its slot is needed by a newer one. (A free that was never seen can leave a stale
// entry in the table; the move replaces it.)
constexpr uint32_t kYoungSlots = 256;
inline uint32_t young_index(uint64_t addr) {
  return static_cast<uint32_t>(((addr >> 4) * 0x9E3779B97F4A7C15ull) >> 56);
}

static_assert(kYoungSlots == capture::kScanYoungSlots, "findleaks reads the young cache");

struct State {
  LiveTable live[2];  // P, N
  LiveTable::Entry young[2][kYoungSlots] = {};
  MapTable maps;
  ArenaTable arenas;  // the interpreter's arena allocator: start -> size (not blocks)
  std::vector<Site> sites;
  std::vector<uint32_t> dirty;
  capture::EventDelta delta[2];
  double live_total = 0, peak = 0, window_peak = 0, alloc_count = 0, alloc_bytes = 0;
  uint64_t events = 0;
  // A followed fork child's next snapshot lists every live site (aggregate_after_fork_child).
  bool full_next = false;
};
State* g_state = nullptr;

State& state() {
  if (!g_state) {
    void* m = own_map(sizeof(State));
    if (!m) own_out_of_memory();
    g_state = new (m) State();
  }
  return *g_state;
}

// Estimates (sampled) and sums of them as the counts a record carries.
inline uint64_t rounded(double v) { return v > 0.5 ? static_cast<uint64_t>(std::llround(v)) : 0ull; }

inline double weight(uint64_t size) { return capture::sample_weight(size, g_sample_rate); }

void site_add(State& s, uint32_t stack, uint8_t layer, double bytes, double count) {
  if (stack > (1u << 26)) return;
  uint32_t key = stack * 4 + layer;
  if (key >= s.sites.size()) s.sites.resize(static_cast<size_t>(key) + 1 + s.sites.size() / 2);
  Site& site = s.sites[key];
  site.bytes += bytes;
  site.count += count;
  if (!site.dirty) {
    site.dirty = true;
    s.dirty.push_back(key);
  }
  s.live_total += bytes;
  if (s.live_total > s.window_peak) {
    s.window_peak = s.live_total;
    if (s.live_total > s.peak) s.peak = s.live_total;
  }
}

void drop(State& s, const LiveTable::Entry& e) {
  double w = e.layer == kLayerMmap ? 1.0 : weight(e.size);
  site_add(s, e.stack, static_cast<uint8_t>(e.layer), -static_cast<double>(e.size) * w, -w);
}

void unmap(State& s, uint64_t addr, uint64_t size) {
  capture::unmap_range(s.maps, addr, size, [&s](const capture::LiveEntry& e, uint64_t removed, bool whole) {
    site_add(s, e.stack, kLayerMmap, -static_cast<double>(removed), whole ? -1 : 0);
  });
}

// Applies decoded events to the state (capture::decode_events visitor).
struct Apply {
  State& s;
  int si;
  void alloc(uint8_t tag, uint64_t addr, uint64_t size, uint64_t stack) {
    ++s.events;
    uint8_t layer = tag == capture::kAllocRaw ? kLayerRaw : tag == capture::kAllocMalloc ? kLayerMalloc
                    : tag == capture::kMmap ? kLayerMmap : kLayerPython;
    uint32_t flags = tag == capture::kAllocObj ? capture::kEntryObjDomain : 0;
    LiveTable::Entry e{addr, size, layer, static_cast<uint32_t>(stack), flags};
    double w = layer == kLayerMmap ? 1.0 : weight(size);
    s.alloc_count += w;
    s.alloc_bytes += static_cast<double>(size) * w;
    if (layer == kLayerMmap) {
      unmap(s, addr, size);
      s.maps[addr] = e;
    } else {
      LiveTable::Entry& y = s.young[si][young_index(addr)];
      if (y.addr == addr) {
        drop(s, y);  // a free we never saw
      } else if (y.addr) {
        LiveTable::Entry old;
        if (s.live[si].erase(y.addr, &old)) drop(s, old);  // stale: its free was never seen
        s.live[si].insert(y.addr, y.size, y.stack, static_cast<uint8_t>(y.layer), y.flags);
      }
      y = e;
    }
    site_add(s, e.stack, layer, static_cast<double>(size) * w, w);
  }
  void free(uint64_t addr) {
    ++s.events;
    LiveTable::Entry& y = s.young[si][young_index(addr)];
    if (y.addr == addr) {
      drop(s, y);
      y = LiveTable::Entry{};
      return;
    }
    LiveTable::Entry old;
    if (s.live[si].erase(addr, &old)) drop(s, old);
  }
  void arena(bool alloc, uint64_t addr, uint64_t size) {
    ++s.events;
    if (alloc) {
      s.arenas[addr] = size;
    } else {
      s.arenas.erase(addr);
      unmap(s, addr, size);  // mapped before the PyMem hooks: a tracked mmap
    }
  }
  void munmap(uint64_t addr, uint64_t size) {
    ++s.events;
    unmap(s, addr, size);
  }
};

}  // namespace

void aggregate_consume(uint8_t stream, const uint8_t* p, size_t n) {
  State& s = state();
  const int si = stream == capture::kStreamPy ? 0 : 1;
  // The agent wrote these bytes itself: a malformed record cannot happen.
  capture::decode_events(p, p + n, s.delta[si], Apply{s, si});
}

size_t aggregate_snapshot_bound() {
  State& s = state();
  return 64 + (s.full_next ? s.sites.size() : s.dirty.size()) * 3 * capture::kMaxVarint;
}

uint8_t* aggregate_put_snapshot(uint8_t* out, uint64_t ns, bool final) {
  State& s = state();
  std::vector<uint32_t> now, later;
  if (s.full_next) {
    // The first snapshot of a forked child: every live site, read without writing to the
    // sites that did not change (their `written` is the parent's; close enough for the
    // moved-enough test). Keys ascending, as the record wants.
    s.full_next = false;
    for (uint32_t key = 0; key < s.sites.size(); ++key) {
      const Site& site = s.sites[key];
      if (site.dirty || site.bytes > 0.5 || site.count > 0.5) now.push_back(key);
    }
  } else {
    std::sort(s.dirty.begin(), s.dirty.end());
    // Sites that moved too little since they were last written stay dirty for later.
    for (uint32_t key : s.dirty) {
      const Site& site = s.sites[key];
      double moved = site.written < 0 ? site.bytes + 1e18 : std::fabs(site.bytes - site.written);
      if (final || moved >= std::max(4096.0, 0.01 * std::max(site.bytes, site.written))) now.push_back(key);
      else later.push_back(key);
    }
  }
  uint8_t* p = capture::put_snapshot_head(out, ns, rounded(s.live_total), rounded(s.peak), rounded(s.alloc_count),
                                          rounded(s.alloc_bytes), s.events, now.size());
  uint64_t prev = 0;
  for (uint32_t key : now) {
    Site& site = s.sites[key];
    if (site.dirty) {  // (a full snapshot's unchanged sites are not written to: no page copied)
      site.dirty = false;
      site.written = site.bytes;
    }
    p = capture::put_svarint(p, static_cast<int64_t>(key) - static_cast<int64_t>(prev));
    prev = key;
    p = capture::put_varint(p, rounded(site.bytes));
    p = capture::put_varint(p, rounded(site.count));
  }
  s.dirty.swap(later);  // a full snapshot wrote every dirty site: none left
  return p;
}

void aggregate_mark(uint64_t* live, uint64_t* window_peak) {
  State& s = state();
  *live = rounded(s.live_total);
  *window_peak = rounded(s.window_peak);
  s.window_peak = s.live_total;
}

uint64_t aggregate_live_bytes() { return rounded(state().live_total); }

void aggregate_after_fork_child() {
  State& s = state();
  // Not by marking every site dirty: writing to each would copy every page of the table the
  // fork shares with the parent (measured: most of a short child's cost).
  s.full_next = true;
  s.peak = s.window_peak = s.live_total;
  s.alloc_count = s.alloc_bytes = 0;
  s.events = 0;
}

void aggregate_reset() {
  if (g_state) {
    g_state->~State();
    own_unmap(g_state, sizeof(State));
  }
  g_state = nullptr;
  own_pool_release();
}

size_t aggregate_live_py_count() { return g_state ? g_state->live[0].size() + kYoungSlots : 0; }

void aggregate_prefetch_py(uint64_t addr) {
  if (!g_state) return;
  __builtin_prefetch(&g_state->young[0][young_index(addr)]);
  g_state->live[0].prefetch(addr);
}

bool aggregate_lookup_py(uint64_t addr, capture::LiveEntry* out) {
  if (!g_state) return false;
  const State& s = *g_state;
  const capture::LiveEntry& y = s.young[0][young_index(addr)];
  if (y.addr == addr) {
    *out = y;
    return true;
  }
  return s.live[0].find(addr, out);
}

size_t aggregate_describe(capture::ScanDescriptor* d, uint8_t* lists, size_t room) {
  State& s = state();
  for (int i = 0; i < 2; ++i) {
    d->live[i] = capture::ScanTable{reinterpret_cast<uint64_t>(s.live[i].slots()), s.live[i].capacity()};
    d->young[i] = reinterpret_cast<uint64_t>(&s.young[i][0]);
    d->last_addr[i] = s.delta[i].last_addr;
    d->last_stack[i] = s.delta[i].last_stack;
  }
  size_t used = 0;
  auto fits = [&](size_t n) { return used + n <= room; };
  d->mmaps_off = sizeof(capture::ScanDescriptor) + used;
  d->n_mmaps = 0;
  for (const auto& [addr, e] : s.maps) {
    if (!fits(sizeof(capture::ScanMmap))) break;
    capture::ScanMmap m{addr, e.size, e.stack, e.flags};
    std::memcpy(lists + used, &m, sizeof m);
    used += sizeof m;
    ++d->n_mmaps;
  }
  d->arenas_off = sizeof(capture::ScanDescriptor) + used;
  d->n_arenas = 0;
  for (const auto& [addr, size] : s.arenas) {
    if (!fits(sizeof(capture::ScanRange))) break;
    capture::ScanRange r{addr, addr + size};
    std::memcpy(lists + used, &r, sizeof r);
    used += sizeof r;
    ++d->n_arenas;
  }
  return used;
}

size_t aggregate_describe_bound() {
  State& s = state();
  return s.maps.size() * sizeof(capture::ScanMmap) + s.arenas.size() * sizeof(capture::ScanRange);
}

}  // namespace leakscope::agent
