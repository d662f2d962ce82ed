// run --follow-fork (docs/process-trees.md): the report of a root capture finds the captures
// its forked descendants wrote beside it (STEM.PID.lsc, STEM.PID-N.lsc), reads each, and merges
// their leaks and stacks into the root's report, each entry naming the processes it comes from.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "report/profile.h"
#include "report/report.h"

namespace leakscope::report {

struct ProcessOut {
  uint64_t pid = 0, parent_pid = 0;  // parent 0: the root
  std::string capture;               // its capture's path
  std::vector<std::string> argv;
  double start_s = 0, end_s = 0;     // seconds since the root's tracking began
  bool complete = false;             // ended with a clean stop
  std::string end;                   // the stop's reason (exit, _exit, ...), or "no clean stop"
  std::string verdict;               // leak | no-leak | inconclusive
  uint64_t peak_bytes = 0, live_bytes = 0;
  uint64_t inherited_bytes = 0;      // live at the fork, from its parent (a forked child)
  double growth_bytes = 0;           // live at its last snapshot minus at its first
  double leak_rate_bytes_per_s = 0;  // the sum of its leaking sites' rates
};

// Workers of one parent running one command that each grew over a life shorter than the
// tree's: a leak spread over recycled workers (gunicorn --max-requests, a Pool's maxtasksperchild).
struct RecycledOut {
  uint64_t parent_pid = 0;
  std::string command;
  size_t workers = 0, growing = 0;
  double median_growth_bytes = 0, median_life_s = 0;
};

struct TreeOut {
  std::vector<ProcessOut> processes;    // the root first, then by start time
  std::vector<std::string> unreadable;  // "NAME: why" for a capture of the tree that could not be read
  size_t not_read = 0;                  // captures past the reading bound (kMaxTreeCaptures)
  std::vector<RecycledOut> recycled;
};

inline constexpr size_t kMaxTreeCaptures = 4096;

// A capture of a root's tree, from its header and first chunk only.
struct TreeMember {
  std::string path;
  uint64_t pid = 0, parent_pid = 0, start_unix_ns = 0;
  std::string parent_capture;  // a base name
};

// The captures beside `root_path` whose parent chain reaches it, each link naming the process
// that wrote the capture it names (pid and start time checked), by start time. A capture that
// cannot be read goes to `unreadable` ("NAME: why"); past kMaxTreeCaptures, `not_read` counts.
std::vector<TreeMember> tree_members(const std::string& root_path, std::vector<std::string>* unreadable = nullptr,
                                     size_t* not_read = nullptr);

// `--pid P` of report, diff and export: the capture of process P in the tree of `root_path`
// (the root itself when P is its pid). Throws std::invalid_argument, one line, when none is.
std::string tree_capture_of(const std::string& root_path, uint64_t pid);

// `export` of a root capture: its profile merged with each member's at the same moment (`at_s`
// is seconds since the root began; a process begun later is left out), samples summed by
// symbolized site. Without members, build_profile's.
Profile build_tree_profile(const std::string& path, std::optional<double> at_s, const capture::ReadProgress& progress);

// r is a root capture's report (no parent_capture): when captures of forked children lie beside
// it, sets r.tree, merges their leaks and stacks into r.leaks and r.stacks (ProcessShare), and
// makes r.verdict "leak" when any process leaks. Otherwise leaves r as it is.
void add_tree(const BuildOptions& opt, Report& r);

}  // namespace leakscope::report
