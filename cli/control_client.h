// The client side of a tracked process's control socket (agent/control.cpp: the abstract
// socket "\0leakscope/<pid>"), and the parsing of a process id argument, shared by every
// command that talks to a process (snapshot, attach, detach, findleaks, heapdump).
#pragma once
#include <string>

namespace leakscope::cli {

// "123" -> 123; anything else (or 0, or above the kernel's limit) is not a process id: false,
// and the one-line reason on stderr.
bool parse_pid(const std::string& text, long* pid);
bool process_exists(long pid);
// parse_pid, and the process exists; otherwise says why (one line).
bool existing_pid(const std::string& text, long* pid);

// One connection to the control socket, kept open for an exchange of lines.
class ControlClient {
 public:
  ControlClient() = default;
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  bool connect_to(long pid);  // false: no agent listens for pid
  bool send(const std::string& s);
  // The next line (without its newline); false when none comes within `ms`.
  bool line(int ms, std::string* out);

 private:
  int fd_ = -1;
  std::string buf_;
};

// One request and the first line of its answer. False when no agent listens for `pid`;
// `reply` is empty when no answer came in time.
bool control_request(long pid, const char* request, int timeout_ms, std::string* reply);

}  // namespace leakscope::cli
