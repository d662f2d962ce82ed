// Capture replay: see replay.h.
#include "analysis/replay.h"

namespace leakscope::analysis {

const char* layer_name(Layer l) {
  switch (l) {
    case Layer::kPython: return "python";
    case Layer::kPyMemRaw: return "pymem-raw";
    case Layer::kMalloc: return "malloc";
    case Layer::kMmap: return "mmap";
  }
  return "?";
}

namespace {
inline uint64_t hash_addr(uint64_t a) {
  a ^= a >> 33;
  a *= 0xff51afd7ed558ccdull;
  a ^= a >> 33;
  return a;
}
}  // namespace

LiveMap::LiveMap() : slots_(1u << 16), mask_((1u << 16) - 1) {}

void LiveMap::grow() {
  std::vector<Entry> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, Entry{});
  mask_ = slots_.size() - 1;
  for (const Entry& e : old) {
    if (!e.addr) continue;
    uint64_t i = hash_addr(e.addr) & mask_;
    while (slots_[i].addr) i = (i + 1) & mask_;
    slots_[i] = e;
  }
}

int64_t LiveMap::insert(uint64_t addr, uint64_t size, uint32_t stack, Layer layer) {
  if ((used_ + 1) * 10 > slots_.size() * 7) grow();
  uint64_t i = hash_addr(addr) & mask_;
  while (slots_[i].addr) {
    if (slots_[i].addr == addr) {
      int64_t prev = static_cast<int64_t>(slots_[i].size);
      slots_[i].size = size;
      slots_[i].stack = stack;
      slots_[i].layer = static_cast<uint8_t>(layer);
      return prev;
    }
    i = (i + 1) & mask_;
  }
  slots_[i].addr = addr;
  slots_[i].size = size;
  slots_[i].stack = stack;
  slots_[i].layer = static_cast<uint8_t>(layer);
  ++used_;
  return -1;
}

bool LiveMap::erase(uint64_t addr, Entry* out) {
  uint64_t i = hash_addr(addr) & mask_;
  while (slots_[i].addr) {
    if (slots_[i].addr == addr) {
      *out = slots_[i];
      // backward-shift deletion keeps probe chains intact without tombstones
      uint64_t j = i;
      for (;;) {
        j = (j + 1) & mask_;
        if (!slots_[j].addr) break;
        uint64_t k = hash_addr(slots_[j].addr) & mask_;
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
          slots_[i] = slots_[j];
          i = j;
        }
      }
      slots_[i] = Entry{};
      --used_;
      return true;
    }
    i = (i + 1) & mask_;
  }
  return false;
}

void Replay::add_live(uint64_t size) {
  live_bytes_ += size;
  if (live_bytes_ > peak_bytes_) {
    peak_bytes_ = live_bytes_;
    peak_ns_ = now_ns_;
  }
}

void Replay::alloc(capture::Stream stream, capture::Tag tag, uint64_t addr, uint64_t size, uint64_t stack) {
  ++alloc_count_;
  alloc_bytes_ += size;
  uint32_t st = static_cast<uint32_t>(stack);
  if (tag == capture::kMmap) {
    LiveMap::Entry e{};
    e.addr = addr;
    e.size = size;
    e.layer = static_cast<uint8_t>(Layer::kMmap);
    e.stack = st;
    munmap(addr, size);  // a new mapping replaces whatever overlapped it
    mmaps_[addr] = e;
    add_live(size);
    return;
  }
  Layer layer = tag == capture::kAllocRaw ? Layer::kPyMemRaw : tag == capture::kAllocMalloc ? Layer::kMalloc : Layer::kPython;
  LiveMap& m = stream == capture::kStreamPy ? live_py_ : live_native_;
  int64_t prev = m.insert(addr, size, st, layer);
  if (prev >= 0) live_bytes_ -= static_cast<uint64_t>(prev);  // a free we never saw
  add_live(size);
}

void Replay::free(capture::Stream stream, uint64_t addr) {
  LiveMap& m = stream == capture::kStreamPy ? live_py_ : live_native_;
  LiveMap::Entry e;
  if (m.erase(addr, &e)) {
    live_bytes_ -= e.size;
  } else {
    ++unknown_frees_;
  }
}

void Replay::arena(bool alloc, uint64_t addr, uint64_t size) {
  if (alloc) {
    arena_bytes_ += size;
  } else {
    arena_bytes_ -= std::min(arena_bytes_, size);
    // An arena mapped before the PyMem hooks were installed was seen as a plain mmap.
    munmap(addr, size);
  }
}

void Replay::munmap(uint64_t addr, uint64_t size) {
  if (mmaps_.empty() || size == 0) return;
  uint64_t end = addr + size;
  auto it = mmaps_.upper_bound(addr);
  if (it != mmaps_.begin()) --it;
  while (it != mmaps_.end() && it->first < end) {
    uint64_t s = it->first, e = s + it->second.size;
    if (e <= addr) {
      ++it;
      continue;
    }
    LiveMap::Entry ent = it->second;
    it = mmaps_.erase(it);
    live_bytes_ -= ent.size;
    if (s < addr) {  // keep the part before
      LiveMap::Entry l = ent;
      l.size = addr - s;
      mmaps_[s] = l;
      live_bytes_ += l.size;
    }
    if (e > end) {  // keep the part after
      LiveMap::Entry r = ent;
      r.addr = end;
      r.size = e - end;
      it = mmaps_.emplace(end, r).first;
      live_bytes_ += r.size;
      ++it;
    }
  }
}

void Replay::frame_py(uint64_t id, uint64_t code_id, uint64_t instr) {
  frames_.push_back(Frame{false, code_id, instr});
}
void Replay::frame_native(uint64_t id, uint64_t ip) { frames_.push_back(Frame{true, ip, 0}); }
void Replay::stack_node(uint64_t id, uint64_t parent, uint64_t frame) {
  nodes_.push_back(Node{static_cast<uint32_t>(parent), static_cast<uint32_t>(frame)});
}
void Replay::code(capture::Code&& c) {
  uint64_t id = c.id;
  codes_[id] = std::move(c);
}
void Replay::module(capture::Module&& m) { modules_.push_back(std::move(m)); }

}  // namespace leakscope::analysis
