// From a process copy to blocks and roots: see heap_model.h and docs/findleaks.md.
#include "analysis/heap_model.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "analysis/replay.h"
#include "capture/byte_cursor.h"
#include "capture/events.h"
#include "capture/live_table.h"

namespace leakscope::analysis {

void HeapModel::note(ModelNote n, uint64_t count) {
  for (auto& [what, c] : notes)
    if (what == n) {
      c += count;
      return;
    }
  notes.emplace_back(n, count);
}

namespace {

constexpr uint64_t kMaxSlots = 1ull << 32;        // live-table slots: 96 GiB of table
// The agent's event rings hold 8 MiB (agent/writer.cpp, kRingEventBytes). A backlog is decoded
// into std::map entries (~90 bytes per 4-byte ALLOC record): at 1 GiB a dump of a few KiB
// (zstd of a repeated record) asked for gigabytes; 16 MiB keeps it under ~400 MB.
constexpr uint64_t kMaxRingBytes = 16ull << 20;

using capture::hex;

capture::ScanDescriptor read_descriptor(const HeapImage& im) {
  capture::ScanDescriptor d{};
  if (!im.read(im.descriptor, &d, sizeof d))
    throw ModelError("no scan descriptor at " + hex(im.descriptor) + " in the process copy");
  if (memcmp(d.magic, capture::kScanMagic, sizeof d.magic) != 0 || d.version != capture::kScanAbiVersion)
    throw ModelError("the scan descriptor at " + hex(im.descriptor) + " is not one this leakscope reads");
  const uint64_t lists[3][2] = {{d.mmaps_off, d.n_mmaps * sizeof(capture::ScanMmap)},
                                {d.arenas_off, d.n_arenas * sizeof(capture::ScanRange)},
                                {d.own_off, d.n_own * sizeof(capture::ScanRange)}};
  for (const auto& l : lists)
    if (l[0] < sizeof d || l[0] > d.size || l[1] > d.size - l[0] || d.n_mmaps > capture::kScanMaxListEntries ||
        d.n_arenas > capture::kScanMaxListEntries || d.n_own > capture::kScanMaxListEntries)
      throw ModelError("corrupt scan descriptor: a list runs past its end");
  if (!im.at(im.descriptor, d.size)) throw ModelError("corrupt process copy: the scan descriptor's lists are missing");
  d.agent_path[sizeof d.agent_path - 1] = 0;
  d.capture_path[sizeof d.capture_path - 1] = 0;
  for (const capture::ScanTable& t : d.live)
    if (t.nslots > kMaxSlots) throw ModelError("corrupt scan descriptor: a live table of " + std::to_string(t.nslots) + " slots");
  return d;
}

template <typename T>
std::vector<T> read_list(const HeapImage& im, uint64_t at, uint64_t n) {
  std::vector<T> out(static_cast<size_t>(n));
  if (n && !im.read(at, out.data(), n * sizeof(T))) throw ModelError("corrupt process copy: a descriptor list is missing");
  return out;
}

uint8_t layer_of(uint8_t tag) {
  switch (tag) {
    case capture::kAllocRaw: return static_cast<uint8_t>(Layer::kPyMemRaw);
    case capture::kAllocMalloc: return static_cast<uint8_t>(Layer::kMalloc);
    case capture::kMmap: return static_cast<uint8_t>(Layer::kMmap);
    default: return static_cast<uint8_t>(Layer::kPython);
  }
}

// One stream's live blocks: the table, then the young cache (newer), then the ring backlog.
// An overlay holds the young entries and the backlog's changes (nullopt-like: addr 0 = freed).
struct Stream {
  std::vector<capture::LiveEntry> table;  // sorted by address the first time live() needs it
  std::map<uint64_t, capture::LiveEntry> overlay;
  bool sorted = false;
  bool live(uint64_t addr) {
    if (auto it = overlay.find(addr); it != overlay.end()) return it->second.addr != 0;
    if (!sorted) {
      std::sort(table.begin(), table.end(), [](const capture::LiveEntry& a, const capture::LiveEntry& b) { return a.addr < b.addr; });
      sorted = true;
    }
    auto it = std::lower_bound(table.begin(), table.end(), addr,
                               [](const capture::LiveEntry& e, uint64_t a) { return e.addr < a; });
    return it != table.end() && it->addr == addr;
  }
};

// Pages of the table that were never touched are not copied (all empty slots): only the
// copied regions inside it are read (slot by slot over 2^32 uncopied slots was a hang on a
// hostile descriptor). A slot is read when one region holds all of it.
void read_table(const HeapImage& im, const capture::ScanTable& t, std::vector<capture::LiveEntry>& out) {
  constexpr uint64_t kEntry = sizeof(capture::LiveEntry);
  const uint64_t lo = t.slots, hi = lo + t.nslots * kEntry < lo ? UINT64_MAX : lo + t.nslots * kEntry;
  const auto& regs = im.regions();
  auto it = std::upper_bound(regs.begin(), regs.end(), lo, [](uint64_t a, const HeapImage::Region& r) { return a < r.lo; });
  if (it != regs.begin() && std::prev(it)->hi > lo) --it;
  for (; it != regs.end() && it->lo < hi; ++it) {
    uint64_t a = std::max(lo, it->lo), z = std::min(hi, it->hi);
    a = lo + (a - lo + kEntry - 1) / kEntry * kEntry;  // the first whole slot
    for (; a < z && z - a >= kEntry; a += kEntry) {
      capture::LiveEntry e;
      memcpy(&e, im.region_bytes(*it) + (a - it->lo), sizeof e);
      if (e.addr) out.push_back(e);
    }
  }
}

struct Backlog {
  Stream* s[2];
  capture::BasicMapTable<>* maps;
  std::map<uint64_t, uint64_t>* arenas;
  int si = 0;
  void alloc(uint8_t tag, uint64_t addr, uint64_t size, uint64_t stack) {
    capture::LiveEntry e{addr, size & ((1ull << 56) - 1), layer_of(tag), static_cast<uint32_t>(stack),
                         tag == capture::kAllocObj ? capture::kEntryObjDomain : 0u};
    if (tag == capture::kMmap) {
      capture::unmap_range(*maps, addr, size, [](const capture::LiveEntry&, uint64_t, bool) {});
      (*maps)[addr] = e;
    } else {
      s[si]->overlay[addr] = e;
    }
  }
  // Freeing what is not live changes nothing: no entry (a hostile backlog of FREE records,
  // 2 bytes each, would otherwise grow the overlay without a block behind any of them).
  void free(uint64_t addr) {
    if (s[si]->live(addr)) s[si]->overlay[addr] = capture::LiveEntry{};
  }
  void arena(bool alloc, uint64_t addr, uint64_t size) {
    if (alloc) {
      (*arenas)[addr] = size;
    } else {
      arenas->erase(addr);
      capture::unmap_range(*maps, addr, size, [](const capture::LiveEntry&, uint64_t, bool) {});
    }
  }
  void munmap(uint64_t addr, uint64_t size) {
    capture::unmap_range(*maps, addr, size, [](const capture::LiveEntry&, uint64_t, bool) {});
  }
};

// The events published in a ring after the last one the agent consumed.
bool apply_backlog(const HeapImage& im, const capture::ScanDescriptor& d, int i, Backlog& b) {
  const capture::ScanRing& r = d.ring[i];
  uint64_t head = 0;
  if (!r.data || !im.read(r.head_addr, &head, sizeof head)) return true;  // no ring (nothing tracked yet)
  uint64_t cap = r.mask + 1;
  if (cap == 0 || (cap & r.mask) != 0 || cap > kMaxRingBytes || head < r.tail || head - r.tail > cap) return false;
  uint64_t n = head - r.tail;
  uint64_t off = r.tail & r.mask, first = std::min(n, cap - off);
  // Checked before anything is allocated: a ring that was not copied costs nothing.
  const uint8_t* p1 = im.at(r.data + off, first);
  const uint8_t* p2 = im.at(r.data, n - first);
  if (n && (!p1 || !p2)) return false;
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  if (n) {
    memcpy(bytes.data(), p1, first);
    memcpy(bytes.data() + first, p2, n - first);
  }
  capture::EventDelta delta{d.last_addr[i], d.last_stack[i]};
  b.si = i;
  return capture::decode_events(bytes.data(), bytes.data() + n, delta, b);
}

void append_stream(const Stream& s, std::vector<HeapBlock>& out) {
  // Table entries not overridden by the overlay, then the overlay's live entries.
  for (const capture::LiveEntry& e : s.table)
    if (!s.overlay.count(e.addr))
      out.push_back(HeapBlock{e.addr, e.size, e.stack, static_cast<uint8_t>(e.layer),
                              static_cast<uint8_t>((e.flags & capture::kEntryObjDomain) ? 1 : 0)});
  for (const auto& [addr, e] : s.overlay)
    if (e.addr)
      out.push_back(HeapBlock{e.addr, e.size, e.stack, static_cast<uint8_t>(e.layer),
                              static_cast<uint8_t>((e.flags & capture::kEntryObjDomain) ? 1 : 0)});
}

}  // namespace

// Declared here, defined in heap_model_roots.cpp: arenas, hosts and roots.
void model_arenas_and_roots(const HeapImage& im, HeapModel& m, std::vector<capture::ScanRange> arenas,
                            std::vector<capture::ScanRange> hosts);

HeapModel build_model(const HeapImage& im) {
  HeapModel m;
  m.desc = read_descriptor(im);
  const capture::ScanDescriptor& d = m.desc;
  if (d.flags & capture::kScanPython) {
    m.py = lsp_py_layout_for_minor(static_cast<int>(d.py_minor));
    if (!m.py) m.note(ModelNote::kNoPythonLayout);
  }
  Stream streams[2];
  for (int i = 0; i < 2; ++i) {
    // The table's load limit, but never more than the copy could hold: nslots is the
    // descriptor's word (up to 2^32: a 72 GB reserve for a hostile dump).
    streams[i].table.reserve(static_cast<size_t>(std::min<uint64_t>(d.live[i].nslots * 7 / 10 + 16,
                                                                     im.bytes_size() / sizeof(capture::LiveEntry) + 16)));
    read_table(im, d.live[i], streams[i].table);
    std::vector<capture::LiveEntry> young(capture::kScanYoungSlots);
    if (d.young[i] && im.read(d.young[i], young.data(), young.size() * sizeof(capture::LiveEntry)))
      for (const capture::LiveEntry& e : young)
        if (e.addr) streams[i].overlay[e.addr] = e;
  }
  capture::BasicMapTable<> maps;
  for (const capture::ScanMmap& mm : read_list<capture::ScanMmap>(im, im.descriptor + d.mmaps_off, d.n_mmaps))
    if (mm.addr && mm.size)
      maps[mm.addr] = capture::LiveEntry{mm.addr, mm.size & ((1ull << 56) - 1), static_cast<uint8_t>(Layer::kMmap),
                                         mm.stack, mm.flags};
  std::map<uint64_t, uint64_t> arena_map;
  for (const capture::ScanRange& r : read_list<capture::ScanRange>(im, im.descriptor + d.arenas_off, d.n_arenas))
    if (r.hi > r.lo) arena_map[r.lo] = r.hi - r.lo;
  Backlog b{{&streams[0], &streams[1]}, &maps, &arena_map};
  for (int i = 0; i < 2; ++i)
    if (!apply_backlog(im, d, i, b)) m.note(ModelNote::kBacklogMalformed);

  // Tens of millions of blocks for a big heap: one vector, filtered in place (no copies).
  std::vector<HeapBlock>& all = m.blocks;
  all.reserve(streams[0].table.size() + streams[1].table.size() + streams[0].overlay.size() +
              streams[1].overlay.size() + maps.size());
  for (Stream& s : streams) {
    append_stream(s, all);
    std::vector<capture::LiveEntry>().swap(s.table);
  }
  for (const auto& [addr, e] : maps) all.push_back(HeapBlock{addr, e.size, e.stack, static_cast<uint8_t>(Layer::kMmap), 0});
  std::sort(all.begin(), all.end(), [](const HeapBlock& a, const HeapBlock& b) { return a.addr < b.addr; });
  // A tracked mapping with tracked blocks inside is a host (an arena mapped before the PyMem
  // wrappers, or a program's own allocator): not a block, its other bytes are memory to walk.
  std::vector<capture::ScanRange> hosts;
  uint64_t dropped = 0;
  size_t kept = 0;  // all[0, kept) are the blocks so far
  for (size_t i = 0; i < all.size(); ++i) {
    const HeapBlock blk = all[i];
    if (blk.addr + blk.extent() < blk.addr) {
      ++dropped;
      continue;
    }
    bool keep = true;
    while (kept > 0 && blk.addr < all[kept - 1].addr + all[kept - 1].extent()) {
      const HeapBlock& prev = all[kept - 1];
      if (prev.layer == static_cast<uint8_t>(Layer::kMmap) && blk.layer != static_cast<uint8_t>(Layer::kMmap) &&
          blk.addr + blk.extent() <= prev.addr + prev.size) {
        hosts.push_back(capture::ScanRange{prev.addr, prev.addr + prev.size});
        --kept;
        continue;
      }
      keep = false;
      break;
    }
    if (keep) all[kept++] = blk;
    else ++dropped;
  }
  all.resize(kept);
  if (dropped) m.note(ModelNote::kOverlappingBlocks, dropped);
  // Arenas are disjoint: one overlapping another (or wrapping around) is a hostile list, whose
  // every entry could otherwise cover every block (roots = arenas x blocks).
  std::vector<capture::ScanRange> arenas;
  for (const auto& [lo, size] : arena_map)
    if (lo + size > lo && (arenas.empty() || lo >= arenas.back().hi)) arenas.push_back(capture::ScanRange{lo, lo + size});
  model_arenas_and_roots(im, m, std::move(arenas), std::move(hosts));
  return m;
}

}  // namespace leakscope::analysis
