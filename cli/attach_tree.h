// `leakscope attach --children PID` and `detach --children PID` (docs/process-trees.md): the
// process's descendants, each attached into CAPTURE-STEM.PID.lsc beside the root's capture
// with its place in the tree; children any of them forks later are followed by the agent.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace leakscope::cli {

// (pid, parent pid) of every descendant of `pid` alive now, parents before their children
// (/proc/PID/task/TID/children, breadth first), at most `limit`.
std::vector<std::pair<long, long>> descendants(long pid, size_t limit);

// Attaches each descendant of `root_pid` (its capture `root_capture`, an absolute path) with
// `base_cfg` (the root's options, follow_fork on) plus its own output, tree_root,
// parent_capture and parent_pid. One line each (unless quiet); a descendant that cannot be
// attached is a warning. Returns how many were attached.
int attach_descendants(long root_pid, const std::string& root_capture, const std::string& agent,
                       const std::string& base_cfg, bool quiet);

// Detaches every descendant of `pid` whose agent says it is attached; one line each unless
// quiet. Returns how many were detached.
int detach_descendants(long pid, bool quiet);

}  // namespace leakscope::cli
