// Capture replay: see replay.h.
#include "analysis/replay.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

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

double Replay::weight(uint64_t size) const { return capture::sample_weight(size, sample_rate_); }
uint64_t Replay::estimate(uint64_t size) const {
  if (sample_rate_ == 0) return size;
  return static_cast<uint64_t>(std::llround(static_cast<double>(size) * weight(size)));
}

void Replay::info(std::string&& key, std::string&& value) {
  if (key == "sample_rate") sample_rate_ = std::strtoull(value.c_str(), nullptr, 10);
  if (key == "interval_ns") {
    uint64_t v = std::strtoull(value.c_str(), nullptr, 10);
    if (v >= 10000000ull) {
      snap_every_ns_ = v;
      // The first chunk's TICK precedes this record: re-arm the next snapshot.
      if (!snap_t_.empty()) next_snap_ns_ = static_cast<uint64_t>(snap_t_.back() * 1e9) + v;
    }
  }
  info_[key] = std::move(value);
}

// Series are kept per (stack, layer): a Python-only stack can hold Python objects and, from
// the same line, libc blocks (ctypes) in the other stream.
void Replay::stack_add(uint32_t stack, uint8_t layer, double bytes, double count) {
  if (stack > (1u << 26) || layer > 3) return;  // hostile ids: never allocate without bound
  // slot_ is dense by key (4 bytes each): 2^26 alone still let one record make it huge. Stack ids are
  // dense (STACK records define them from 1); a record may name one defined a little later (a
  // SNAPSHOT precedes its chunk's definitions, whose ring holds 4 MiB: under 2^21 STACK
  // records), never further ahead than that.
  if (stack > nodes_.size() + (1u << 21)) return;
  uint32_t key = stack * 4 + layer;
  if (key >= slot_.size()) slot_.resize(static_cast<size_t>(key) + 1 + slot_.size() / 2, 0);
  if (!slot_[key]) {
    acc_.emplace_back();
    slot_[key] = static_cast<uint32_t>(acc_.size());
  }
  StackAcc& a = acc_[slot_[key] - 1];
  a.layer = layer;
  a.bytes += bytes;
  a.count += count;
  if (bytes > 0) a.alloc_bytes += bytes;
  if (count > 0) a.alloc_count += count;
  if (a.bytes < 0.5) a.bytes = 0;  // rounding of estimates
  if (a.count < 0.5) a.count = 0;
  if (a.bytes > a.peak) a.peak = a.bytes;
  if (!a.dirty) {
    a.dirty = true;
    dirty_.push_back(key);
  }
  if (layer < 4) layer_bytes_[layer] += bytes;
}

void Replay::take_snapshot(uint64_t ns) {
  double t = static_cast<double>(ns) / 1e9;
  // A point no later than the last one updates it (series times stay strictly increasing).
  bool update = !snap_t_.empty() && t <= snap_t_.back();
  if (!update) snap_t_.push_back(t);
  uint32_t idx = static_cast<uint32_t>(snap_t_.size() - 1);
  for (uint32_t s : dirty_) {
    StackAcc& a = acc_[slot_[s] - 1];
    a.dirty = false;
    auto v = std::make_pair(static_cast<float>(a.bytes), static_cast<float>(a.count));
    if (!a.points.empty() && a.points.back().first == idx) a.points.back().second = v;
    else a.points.emplace_back(idx, v);
  }
  dirty_.clear();
  ProcessPoint p;
  p.t_s = t;
  if (have_stats_) {
    p.rss = static_cast<double>(stats_.rss);
    p.rss_anon = static_cast<double>(stats_.rss_anon);
    p.rss_file = static_cast<double>(stats_.rss_file);
    p.glibc_in_use = static_cast<double>(stats_.glibc_in_use);
    p.glibc_free = static_cast<double>(stats_.glibc_free);
    p.arena = static_cast<double>(std::max(stats_.arena_bytes, arena_bytes_));
  }
  p.live = static_cast<double>(live_bytes_);
  p.python = layer_bytes_[static_cast<int>(Layer::kPython)];
  p.mmap = layer_bytes_[static_cast<int>(Layer::kMmap)];
  p.allocs = static_cast<double>(alloc_count_);
  p.pymalloc_free = p.arena > p.python ? p.arena - p.python : 0;  // upper bound: large objects are not in arenas
  if (update) {
    p.t_s = proc_.back().t_s;
    proc_.back() = p;
  } else {
    proc_.push_back(p);
  }
  if (have_gc_) {
    GcPoint g = gc_last_;
    g.t_s = p.t_s;
    if (!gc_.empty() && gc_.back().t_s >= g.t_s) gc_.back() = g;
    else gc_.push_back(g);
  }
}

void Replay::gcstats(const capture::GcStats& g) {
  GcPoint& p = gc_last_;
  p.enabled = (g.flags & capture::kGcEnabled) != 0;
  p.collecting = (g.flags & capture::kGcCollecting) != 0;
  p.debug = g.debug;
  for (int i = 0; i < 3; ++i) {
    p.count[i] = g.count[i];
    p.threshold[i] = g.threshold[i];
    p.collections[i] = g.collections[i];
    p.collected[i] = g.collected[i];
    p.uncollectable[i] = g.uncollectable[i];
  }
  p.garbage = g.garbage;
  p.long_lived_total = g.long_lived_total;
  p.long_lived_pending = g.long_lived_pending;
  have_gc_ = true;
  if (g.flags & capture::kGcCensus) {
    census_.t_s = static_cast<double>(g.time_ns) / 1e9;
    for (int i = 0; i < 3; ++i) census_.objects[i] = g.objects[i];
    census_.frozen = g.frozen;
    census_.complete = (g.flags & capture::kGcCensusComplete) != 0;
    have_census_ = true;
  }
}

void Replay::tick(uint64_t ns) {
  now_ns_ = ns;
  if (aggregate_) return;  // aggregate captures snapshot on SNAPSHOT records only
  if (ns >= next_snap_ns_) {
    tick_point_due_ = true;  // the chunk's events follow its TICK: take the point at chunk_end
    next_snap_ns_ = ns + snap_every_ns_;
  }
}

void Replay::chunk_end() {
  if (!tick_point_due_) return;
  tick_point_due_ = false;
  take_snapshot(now_ns_);
}

void Replay::stop(uint64_t ns, std::string&& reason) {
  stopped_ = true;
  stop_reason_ = std::move(reason);
  stop_ns_ = ns;
  now_ns_ = ns;
  // The STOP record leads its chunk (D section first): the chunk's P and N events are still
  // to come, so the last point is taken by finish(), after everything is read.
  point_pending_ = true;
  next_snap_ns_ = UINT64_MAX;
}

void Replay::snapshot(capture::Snapshot&& s) {
  ++snapshots_;
  for (const auto& [key, bytes, count] : s.changed) {
    uint32_t stack = static_cast<uint32_t>(key / 4);
    uint8_t layer = static_cast<uint8_t>(key % 4);
    size_t k = static_cast<size_t>(key);
    const StackAcc* prev = find_acc(k);
    double prev_b = prev ? prev->bytes : 0, prev_c = prev ? prev->count : 0;
    stack_add(stack, layer, static_cast<double>(bytes) - prev_b, static_cast<double>(count) - prev_c);
  }
  live_bytes_ = s.live_bytes;
  if (s.peak_bytes > peak_bytes_) {
    peak_bytes_ = s.peak_bytes;
    peak_ns_ = s.time_ns;
  }
  alloc_count_ = s.alloc_count;
  alloc_bytes_ = s.alloc_bytes;
  now_ns_ = std::max(now_ns_, s.time_ns);
  // Snapshots come with every flush; series points are spaced by the interval.
  if (s.time_ns >= next_snap_ns_) {
    take_snapshot(s.time_ns);
    next_snap_ns_ = s.time_ns + snap_every_ns_;
    point_pending_ = false;
  } else {
    point_pending_ = true;
  }
}

std::vector<Replay::SiteTotal> Replay::site_totals(bool include_freed) const {
  std::vector<SiteTotal> out;
  for (uint32_t key = 0; key < slot_.size(); ++key) {  // in key order
    if (!slot_[key]) continue;
    const StackAcc& a = acc_[slot_[key] - 1];
    if (a.bytes <= 0 && a.count <= 0 && !(include_freed && a.alloc_bytes > 0)) continue;
    out.push_back(SiteTotal{key / 4, static_cast<uint8_t>(key % 4), a.bytes, a.count, a.alloc_bytes, a.alloc_count});
  }
  return out;
}

std::vector<Replay::SiteTotal> Replay::site_totals_at(size_t index) const {
  std::vector<SiteTotal> out;
  for (uint32_t key = 0; key < slot_.size(); ++key) {
    if (!slot_[key]) continue;
    const auto& pts = acc_[slot_[key] - 1].points;
    auto it = std::upper_bound(pts.begin(), pts.end(), index, [](size_t i, const auto& p) { return i < p.first; });
    if (it == pts.begin()) continue;
    --it;
    double bytes = it->second.first, count = it->second.second;
    if (bytes <= 0 && count <= 0) continue;
    out.push_back(SiteTotal{key / 4, static_cast<uint8_t>(key % 4), bytes, count});
  }
  return out;
}

void Replay::finish() {
  if (point_pending_) {
    take_snapshot(stopped_ ? stop_ns_ : now_ns_);
    point_pending_ = false;
    return;
  }
  if (aggregate_) return;
  if (!stopped_ && (snap_t_.empty() || snap_t_.back() < static_cast<double>(now_ns_) / 1e9)) take_snapshot(now_ns_);
}

std::vector<StackSeries> Replay::stack_series(double min_peak_bytes) const {
  std::vector<StackSeries> out;
  for (uint32_t key = 0; key < slot_.size(); ++key) {  // in key order
    if (!slot_[key]) continue;
    const StackAcc& a = acc_[slot_[key] - 1];
    if (a.points.empty() || a.peak < min_peak_bytes) continue;
    StackSeries ss;
    ss.stack = key / 4;
    ss.layer = layer_name(static_cast<Layer>(a.layer));
    size_t k = 0;
    float bytes = 0, count = 0;
    for (uint32_t i = a.points.front().first; i < snap_t_.size(); ++i) {
      while (k < a.points.size() && a.points[k].first <= i) {
        bytes = a.points[k].second.first;
        count = a.points[k].second.second;
        ++k;
      }
      ss.points.push_back(StackPoint{snap_t_[i], bytes, count});
    }
    out.push_back(std::move(ss));
  }
  return out;
}

void Replay::add_live(uint64_t size) {
  live_bytes_ += size;
  if (live_bytes_ > peak_bytes_) {
    peak_bytes_ = live_bytes_;
    peak_ns_ = now_ns_;
  }
}

void Replay::alloc(capture::Stream stream, capture::Tag tag, uint64_t addr, uint64_t size, uint64_t stack) {
  uint32_t st = static_cast<uint32_t>(stack);
  if (tag == capture::kMmap) {  // mappings are never sampled
    ++alloc_count_;
    alloc_bytes_ += size;
    LiveMap::Entry e{};
    e.addr = addr;
    e.size = size;
    e.layer = static_cast<uint8_t>(Layer::kMmap);
    e.stack = st;
    munmap(addr, size);  // a new mapping replaces whatever overlapped it
    mmaps_[addr] = e;
    add_live(size);
    stack_add(st, e.layer, static_cast<double>(size), 1);
    return;
  }
  double w = weight(size);
  uint64_t est = estimate(size);
  alloc_count_ += sample_rate_ ? static_cast<uint64_t>(std::llround(w)) : 1;
  alloc_bytes_ += est;
  Layer layer = tag == capture::kAllocRaw ? Layer::kPyMemRaw : tag == capture::kAllocMalloc ? Layer::kMalloc : Layer::kPython;
  LiveMap& m = stream == capture::kStreamPy ? live_py_ : live_native_;
  LiveMap::Entry old;
  if (m.erase(addr, &old)) {  // a free we never saw
    live_bytes_ -= estimate(old.size);
    stack_add(old.stack, static_cast<uint8_t>(old.layer), -static_cast<double>(estimate(old.size)), -weight(old.size));
  }
  m.insert(addr, size, st, static_cast<uint8_t>(layer));
  add_live(est);
  stack_add(st, static_cast<uint8_t>(layer), static_cast<double>(est), w);
}

void Replay::free(capture::Stream stream, uint64_t addr) {
  LiveMap& m = stream == capture::kStreamPy ? live_py_ : live_native_;
  LiveMap::Entry e;
  if (m.erase(addr, &e)) {
    uint64_t est = estimate(e.size);
    live_bytes_ -= est;
    stack_add(e.stack, static_cast<uint8_t>(e.layer), -static_cast<double>(est), -weight(e.size));
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
  capture::unmap_range(mmaps_, addr, size, [this](const LiveMap::Entry& e, uint64_t removed, bool whole) {
    live_bytes_ -= removed;
    stack_add(e.stack, static_cast<uint8_t>(e.layer), -static_cast<double>(removed), whole ? -1 : 0);
  });
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

namespace leakscope::analysis {

void Replay::tasks(std::string&& payload) {
  TasksSample s = decode_tasks(payload);
  // The groups shown are the last census's that found pending tasks (an asyncio.run that
  // cancels everything at exit leaves a last census with none): keep only those.
  if (s.pending) {
    for (auto& t : tasks_) t.groups.clear();
  } else {
    s.groups.clear();
  }
  tasks_.push_back(std::move(s));
}

}  // namespace leakscope::analysis
