// A capture replayed up to a moment (`export --at`, docs/exports.md): passes every record to a
// Replay until the first TICK or SNAPSHOT later than `until_ns` (ns since the start), and after
// it only the definitions (frames, stacks, code, modules, info, messages), which later records
// may still be needed for. The Replay then holds the state at the last flush (events) or
// snapshot (aggregate) at or before that moment.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "analysis/replay.h"

namespace leakscope::analysis {

class ReplayUntil : public capture::Visitor {
 public:
  ReplayUntil(Replay& rp, uint64_t until_ns) : rp_(rp), until_ns_(until_ns) {}
  bool cut() const { return past_; }  // something after the moment was left out

  void alloc(capture::Stream s, capture::Tag t, uint64_t a, uint64_t n, uint64_t st) override {
    if (!past_) rp_.alloc(s, t, a, n, st);
  }
  void free(capture::Stream s, uint64_t a) override {
    if (!past_) rp_.free(s, a);
  }
  void arena(bool alloc, uint64_t a, uint64_t n) override {
    if (!past_) rp_.arena(alloc, a, n);
  }
  void munmap(uint64_t a, uint64_t n) override {
    if (!past_) rp_.munmap(a, n);
  }
  void tick(uint64_t ns) override {
    if (ns > until_ns_) past_ = true;
    if (!past_) rp_.tick(ns);
  }
  void frame_py(uint64_t id, uint64_t code, uint64_t instr) override { rp_.frame_py(id, code, instr); }
  void frame_native(uint64_t id, uint64_t ip) override { rp_.frame_native(id, ip); }
  void stack_node(uint64_t id, uint64_t parent, uint64_t frame) override { rp_.stack_node(id, parent, frame); }
  void code(capture::Code&& c) override { rp_.code(std::move(c)); }
  void module(capture::Module&& m) override { rp_.module(std::move(m)); }
  void info(std::string&& k, std::string&& v) override { rp_.info(std::move(k), std::move(v)); }
  void stats(const capture::Stats& s) override {
    if (!past_) rp_.stats(s);
  }
  void gcstats(const capture::GcStats& g) override {
    if (!past_) rp_.gcstats(g);
  }
  void stop(uint64_t ns, std::string&& reason) override {
    if (!past_ && ns <= until_ns_) rp_.stop(ns, std::move(reason));
  }
  void message(std::string&& text) override { rp_.message(std::move(text)); }
  void snapshot(capture::Snapshot&& s) override {
    if (s.time_ns > until_ns_) past_ = true;
    if (!past_) rp_.snapshot(std::move(s));
  }
  void findleaks(std::string&& p) override {
    if (!past_) rp_.findleaks(std::move(p));
  }
  void retention(std::string&& p) override {
    if (!past_) rp_.retention(std::move(p));
  }
  void tasks(std::string&& p) override {
    if (!past_) rp_.tasks(std::move(p));
  }
  void chunk_end() override {
    if (!past_) rp_.chunk_end();
  }

 private:
  Replay& rp_;
  uint64_t until_ns_;
  bool past_ = false;
};

}  // namespace leakscope::analysis
