// Control-socket client and process id parsing: see control_client.h.
#include "cli/control_client.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace leakscope::cli {

bool parse_pid(const std::string& text, long* pid) {
  char* end = nullptr;
  *pid = strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != 0 || *pid <= 0 || *pid > 4194304) {
    fprintf(stderr, "leakscope: %s is not a process id\n", text.c_str());
    return false;
  }
  return true;
}

bool process_exists(long pid) { return kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH; }

bool existing_pid(const std::string& text, long* pid) {
  if (!parse_pid(text, pid)) return false;
  if (process_exists(*pid)) return true;
  fprintf(stderr, "leakscope: no process %ld\n", *pid);
  return false;
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) close(fd_);
}

bool ControlClient::connect_to(long pid) {
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "leakscope/%ld", pid);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0;
}

bool ControlClient::send(const std::string& s) {
  return write(fd_, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

bool ControlClient::line(int ms, std::string* out) {
  for (;;) {
    if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
      *out = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return true;
    }
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return false;
    char b[4096];
    ssize_t r = read(fd_, b, sizeof b);
    if (r <= 0) return false;
    buf_.append(b, static_cast<size_t>(r));
  }
}

bool control_request(long pid, const char* request, int timeout_ms, std::string* reply) {
  ControlClient c;
  if (!c.connect_to(pid)) return false;
  reply->clear();
  if (c.send(request) && !c.line(timeout_ms, reply)) reply->clear();
  return true;
}

}  // namespace leakscope::cli
