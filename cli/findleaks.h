// `leakscope findleaks PID|DUMP`, `leakscope heapdump PID -o FILE`, and the exit-time check of
// `leakscope run --findleaks` (docs/findleaks.md). Errors are one line on stderr.
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>

namespace leakscope::report {
struct Renderer;
struct RenderOptions;
}

namespace leakscope::cli {

// The status `run --findleaks` exits with when something is lost (LeakSanitizer's).
inline constexpr int kLostExitStatus = 23;

// TARGET: a process id (a process started with `run` or attached) or a heap dump file.
int cmd_findleaks(const std::string& target, const report::Renderer& format, const report::RenderOptions& opt);
int cmd_heapdump(const std::string& pid_text, const std::string& output, bool quiet);

// run --findleaks: an abstract socket the agent of the child asks on when tracking stops
// (agent/findleaks.cpp). Listen before the fork; serve once the child's pid is known.
class ExitCheck {
 public:
  ExitCheck();
  ~ExitCheck();
  // The socket name, for the child's LEAKSCOPE_FINDLEAKS; "" when it could not be made.
  const std::string& name() const { return name_; }
  // Waits for `child` to exit, answering its scan request meanwhile; returns its wait status.
  int wait_child(pid_t child);
  // After the child exited: analyses what was copied, appends it to the capture and says so
  // in one line. Returns true when something was lost. `ran` tells whether a check was made.
  bool finish(const std::string& capture, bool* ran);

 private:
  void serve_one(pid_t child);
  struct State;
  std::unique_ptr<State> s_;
  std::string name_;
};

}  // namespace leakscope::cli
