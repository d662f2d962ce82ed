// Replays a capture: rebuilds the live set per event stream (PyMem MEM/OBJ, libc/RAW, mmap
// ranges), the running total and its peak, and keeps the definitions (frames, trace tree,
// code objects, modules) needed to symbolize stacks. Memory is proportional to the live set
// and the number of distinct stacks, never to the number of events. Not thread-safe.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "analysis/series.h"
#include "capture/live_table.h"
#include "analysis/tasks_record.h"
#include "capture/reader.h"

namespace leakscope::analysis {

enum class Layer : uint8_t { kPython = 0, kPyMemRaw = 1, kMalloc = 2, kMmap = 3 };
const char* layer_name(Layer l);

// Live blocks: address -> size, stack and layer (capture/live_table.h, shared with the agent).
using LiveMap = capture::LiveTable;

struct Frame {
  bool native = false;
  uint64_t code_or_ip = 0;
  uint64_t instr = 0;
};
struct Node {
  uint32_t parent = 0;
  uint32_t frame = 0;
};

class Replay : public capture::Visitor {
 public:
  void alloc(capture::Stream stream, capture::Tag tag, uint64_t addr, uint64_t size, uint64_t stack) override;
  void free(capture::Stream stream, uint64_t addr) override;
  void arena(bool alloc, uint64_t addr, uint64_t size) override;
  void munmap(uint64_t addr, uint64_t size) override;
  void tick(uint64_t ns) override;
  void chunk_end() override;
  void frame_py(uint64_t id, uint64_t code_id, uint64_t instr) override;
  void frame_native(uint64_t id, uint64_t ip) override;
  void stack_node(uint64_t id, uint64_t parent, uint64_t frame) override;
  void code(capture::Code&& code) override;
  void module(capture::Module&& module) override;
  void info(std::string&& key, std::string&& value) override;
  void stats(const capture::Stats& s) override { stats_ = s; have_stats_ = true; }
  void gcstats(const capture::GcStats& g) override;
  void stop(uint64_t ns, std::string&& reason) override;
  // Call after Reader::read_all: takes the last snapshot (for a capture cut short).
  void finish();

  // Sampling: the mean bytes between samples (0 = every allocation was recorded), and the
  // estimate one sampled block of `size` bytes stands for: size / P(sampled).
  uint64_t sample_rate() const { return sample_rate_; }
  double weight(uint64_t size) const;
  uint64_t estimate(uint64_t size) const;

  // Time series, one point per snapshot (every max(interval, duration/kMaxSnapshots)).
  const std::vector<double>& snapshot_times() const { return snap_t_; }
  // Series for stacks whose live bytes ever reached `min_peak_bytes`, densified (a stack that
  // did not change keeps its last value), each from its first sighting on.
  std::vector<StackSeries> stack_series(double min_peak_bytes) const;
  const std::vector<ProcessPoint>& process_series() const { return proc_; }
  // The collector's state at each snapshot since the first GCSTATS record (each point's t_s is
  // a snapshot time); empty without GCSTATS. And the last census read, if any.
  const std::vector<GcPoint>& gc_series() const { return gc_; }
  const GcCensus* gc_census() const { return have_census_ ? &census_ : nullptr; }
  void message(std::string&& text) override { messages_.push_back(std::move(text)); }
  void snapshot(capture::Snapshot&& s) override;
  // run --findleaks: the last FINDLEAKS record's payload (analysis/findleaks_record.h), or "".
  void findleaks(std::string&& payload) override { findleaks_ = std::move(payload); }
  const std::string& findleaks_payload() const { return findleaks_; }
  // The last RETAIN record's payload (analysis/retention_record.h), or "".
  void retention(std::string&& payload) override {
    retention_ = std::move(payload);
    have_retention_ = true;
  }
  bool have_retention() const { return have_retention_; }
  // Pending asyncio tasks: every census (decoded; a corrupt one throws), in capture order.
  void tasks(std::string&& payload) override;
  const std::vector<TasksSample>& tasks_samples() const { return tasks_; }
  const std::string& retention_payload() const { return retention_; }
  // Aggregate captures (header flag) carry snapshots, not events: call before read_all.
  void set_aggregate(bool on) { aggregate_ = on; }
  bool aggregate() const { return aggregate_; }
  // Live totals per site at the end: (stack, layer, bytes, blocks) for every site with
  // something live (with include_freed, also every site that allocated and freed it all). Estimates when sampled. Works for both capture modes.
  struct SiteTotal {
    uint32_t stack;
    uint8_t layer;
    double bytes, count;
    // Allocated there so far: exact for events captures (every allocation is an increase);
    // for aggregate ones, the sum of the increases between snapshots (a lower bound).
    // site_totals_at leaves them 0.
    double alloc_bytes = 0, alloc_count = 0;
  };
  std::vector<SiteTotal> site_totals(bool include_freed = false) const;
  // The same as of snapshot `index` (< snapshot_times().size()): each (stack, layer)'s last
  // value recorded at or before it (float precision). Used by `leakscope diff`.
  std::vector<SiteTotal> site_totals_at(size_t index) const;

  // results
  const LiveMap& live_py() const { return live_py_; }
  const capture::MapTable& live_mmaps() const { return mmaps_; }
  uint64_t live_bytes() const { return live_bytes_; }
  uint64_t peak_bytes() const { return peak_bytes_; }
  uint64_t peak_ns() const { return peak_ns_; }
  uint64_t alloc_count() const { return alloc_count_; }
  uint64_t alloc_bytes() const { return alloc_bytes_; }
  uint64_t unknown_frees() const { return unknown_frees_; }
  uint64_t last_ns() const { return stopped_ ? stop_ns_ : now_ns_; }
  uint64_t arena_bytes() const { return arena_bytes_; }
  bool stopped() const { return stopped_; }
  uint64_t snapshots() const { return snapshots_; }  // SNAPSHOT records read (aggregate mode)
  const std::string& stop_reason() const { return stop_reason_; }
  const std::vector<std::string>& messages() const { return messages_; }
  const std::map<std::string, std::string>& info() const { return info_; }
  bool have_stats() const { return have_stats_; }
  const capture::Stats& stats() const { return stats_; }
  const std::vector<Frame>& frames() const { return frames_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::unordered_map<uint64_t, capture::Code>& codes() const { return codes_; }
  const std::vector<capture::Module>& modules() const { return modules_; }

 private:
  void add_live(uint64_t size);
  void stack_add(uint32_t stack, uint8_t layer, double bytes, double count);
  void take_snapshot(uint64_t ns);
  struct StackAcc {
    double bytes = 0, count = 0, peak = 0;
    double alloc_bytes = 0, alloc_count = 0;  // every increase (docs/exports.md, "The profile")
    uint8_t layer = 0;
    bool dirty = false;
    std::vector<std::pair<uint32_t, std::pair<float, float>>> points;  // (snapshot index, (bytes, count))
  };
  // Touched (stack, layer) keys only: slot_ maps a key (stack * 4 + layer) to its index + 1 in
  // acc_ (0: none). A capture continuing a parent's (a forked child) names stack ids in the
  // hundreds of thousands but touches few of them: 4 bytes per id, not a StackAcc.
  std::vector<StackAcc> acc_;
  std::vector<uint32_t> slot_;
  const StackAcc* find_acc(size_t key) const { return key < slot_.size() && slot_[key] ? &acc_[slot_[key] - 1] : nullptr; }
  std::vector<uint32_t> dirty_;
  std::vector<double> snap_t_;
  std::vector<ProcessPoint> proc_;
  uint64_t snap_every_ns_ = 1000000000ull, next_snap_ns_ = 0, sample_rate_ = 0;
  double layer_bytes_[4] = {0, 0, 0, 0};
  bool aggregate_ = false;
  bool point_pending_ = false;  // aggregate: data applied since the last series point
  bool tick_point_due_ = false; // events: a point is due once this chunk's events are applied
  LiveMap live_py_, live_native_;
  capture::MapTable mmaps_;
  uint64_t live_bytes_ = 0, peak_bytes_ = 0, peak_ns_ = 0, now_ns_ = 0, stop_ns_ = 0;
  uint64_t alloc_count_ = 0, alloc_bytes_ = 0, unknown_frees_ = 0, arena_bytes_ = 0;
  bool stopped_ = false, have_stats_ = false;
  std::string stop_reason_;
  std::vector<std::string> messages_;
  std::map<std::string, std::string> info_;
  uint64_t snapshots_ = 0;
  std::string findleaks_;
  std::string retention_;
  bool have_retention_ = false;
  std::vector<TasksSample> tasks_;  // groups kept only for the last census with pending tasks
  capture::Stats stats_;
  bool have_gc_ = false, have_census_ = false;
  GcPoint gc_last_;
  std::vector<GcPoint> gc_;
  GcCensus census_;
  std::vector<Frame> frames_{1};
  std::vector<Node> nodes_{1};
  std::unordered_map<uint64_t, capture::Code> codes_;
  std::vector<capture::Module> modules_;
};

}  // namespace leakscope::analysis
