// Loading the agent into a running process with leakscope's own ptrace code (no gdb, no
// shell): see docs/attach.md. x86-64 Linux only.
#pragma once
#include <sys/types.h>

#include <string>

namespace leakscope::inject {

struct Result {
  bool ok = false;
  std::string error;        // one line: what went wrong, why, and the fix
  std::string agent_reply;  // the agent's own message (success or refusal)
  double seconds = 0;       // wall time of the injection
};

// Call preflight() first. Stops one of the threads of `pid` at a
// point where it holds no allocator or loader lock, calls dlopen(agent_path) there unless the
// agent is already mapped, then the agent's attach entry with `config` (docs/attach.md), and
// lets the thread go on exactly where it was.
Result attach(pid_t pid, const std::string& agent_path, const std::string& config);

// Checks that can fail before anything is created: the process exists, is not a zombie,
// its memory map is readable to us and no other tracer holds it. "" or the error line.
std::string preflight(pid_t pid);

// The one-line explanation for a ptrace(PTRACE_SEIZE) failure with `err` on `pid`: another
// user, Yama ptrace_scope, a missing CAP_SYS_PTRACE, another tracer. Exposed for tests.
std::string explain_ptrace_error(pid_t pid, int err);

}  // namespace leakscope::inject
