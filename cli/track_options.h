// The tracking options `run` and `attach` share (and `run`'s --follow-fork), and how they reach
// the agent: environment variables for `run`, "key=value" lines for `attach` (agent/agent.cpp
// apply_option reads both).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

struct TrackOptions {
  bool native = false;
  double interval_s = 1.0;
  uint64_t sample_rate = 0;
  std::string mode = "aggregate";
  double full_resolution_s = 3600;
  uint64_t thin_at = 8ull << 20;
  bool no_retention = false;
  bool follow_fork = false;      // run only
  uint64_t max_processes = 1000;

  struct KeyValue {
    const char* key;
    const char* env;
    std::string value;
  };
  std::vector<KeyValue> pairs() const {
    char i[32], r[32];
    snprintf(i, sizeof i, "%.6f", interval_s);
    snprintf(r, sizeof r, "%.3f", full_resolution_s);
    return {{"native", "LEAKSCOPE_NATIVE", native ? "1" : "0"},
            {"interval", "LEAKSCOPE_INTERVAL", i},
            {"sample_rate", "LEAKSCOPE_SAMPLE_RATE", std::to_string(sample_rate)},
            {"mode", "LEAKSCOPE_MODE", mode},
            {"full_resolution", "LEAKSCOPE_FULL_RESOLUTION", r},
            {"thin_at", "LEAKSCOPE_COMPACT_BYTES", std::to_string(thin_at)},
            {"retention", "LEAKSCOPE_RETENTION", no_retention ? "0" : "1"},
            {"follow_fork", "LEAKSCOPE_FOLLOW_FORK", follow_fork ? "1" : "0"},
            {"max_processes", "LEAKSCOPE_MAX_PROCESSES", std::to_string(max_processes)}};
  }
  void add_run_only(CLI::App* cmd) {
    cmd->add_flag("--follow-fork", follow_fork,
                  "track every process COMMAND forks too, each into CAPTURE-STEM.PID.lsc beside the capture "
                  "(docs/process-trees.md; aggregate mode)");
    cmd->add_option("--max-processes", max_processes,
                    "--follow-fork: at most this many captures in the tree; later children run untracked "
                    "(default 1000)")
        ->check(CLI::Range(static_cast<uint64_t>(1), static_cast<uint64_t>(1000000)));
  }
  void add_to(CLI::App* cmd) {
    cmd->add_flag("--native", native, "record native stacks too (always on for non-Python programs)");
    cmd->add_flag("--no-retention", no_retention,
                  "Python: do not walk the object graph when the run ends (no retention paths, no pause; "
                  "docs/retention.md)");
    cmd->add_option("--interval", interval_s, "seconds between snapshots (flushes happen at least every second)")
        ->check(CLI::Range(0.01, 86400.0));
    cmd->add_option("--sample-rate", sample_rate,
                    "sample allocations by bytes with this mean interval (e.g. 524288); 0 records every allocation")
        ->check(CLI::Range(static_cast<uint64_t>(0), static_cast<uint64_t>(1) << 40));
    cmd->add_option("--mode", mode,
                    "events: every allocation and free (short runs); aggregate: per-site snapshots every "
                    "--interval, a capture that grows with stacks and time, not with allocations")
        ->check(CLI::IsMember({"events", "aggregate"}));
    cmd->add_option("--full-resolution", full_resolution_s,
                    "aggregate mode: snapshots younger than this many seconds keep full resolution; older ones "
                    "are thinned, twice as coarse each time their age doubles (default 3600)")
        ->check(CLI::Range(0.1, 1e8));
    cmd->add_option("--thin-at", thin_at,
                    "aggregate mode: thin the capture's older snapshots each time this many bytes (or half the "
                    "file, if more) have been written since the last time (default 8388608)")
        ->check(CLI::Range(static_cast<uint64_t>(4096), static_cast<uint64_t>(1) << 50));
  }
};
