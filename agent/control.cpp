// Control channel for `leakscope snapshot|detach PID` and attach's status check: an abstract
// Unix socket "\0leakscope/<pid>" (no file, so nothing at a predictable path), polled by the
// writer thread between naps. Only a peer with this process's uid (or root) is served
// (SO_PEERCRED): the same users the kernel would let ptrace or signal it. One request per
// connection: "snapshot\n" (reply "ok <capture path>\n" once it is on disk), "flush\n" (the
// same without the retention walk a snapshot starts: cheap enough for every scrape), "detach\n"
// "mark\n" (aggregate mode: the rings consumed, no snapshot; reply "ok LIVE PEAK\n", the bytes
// live now and the highest live total since the previous mark, which starts a new window: the
// pytest plugin's per-test figures), "detach\n"
// (reply "ok <capture path>\n" once the capture is closed and everything undone; "error ..."
// for a process started by `leakscope run`), "status\n" (reply "run|attached <path>\n"),
// "findleaks\n" (reply "ready 0xDESCRIPTOR <capture path>\n", then wait for "done\n" while
// the client copies the stopped process, flush, reply "ok <capture path>\n"; or "error ...").
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "agent/agent.h"

namespace leakscope::agent {

namespace {
int g_listen = -1;
}

void control_open() {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "leakscope/%d", static_cast<int>(getpid()));
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return;
  }
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);  // out of the low numbers programs reuse
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  g_listen = fd;
}

int control_fd() { return g_listen; }

void control_close() {
  if (g_listen >= 0) close(g_listen);
  g_listen = -1;
}

// Writer thread: returns an accepted, authorised client and its request, or -1.
int control_poll(ControlRequest* req) {
  if (g_listen < 0) return -1;
  int c = accept4(g_listen, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return -1;
  ucred cred{};
  socklen_t cl = sizeof cred;
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || (cred.uid != geteuid() && cred.uid != 0)) {
    close(c);
    return -1;
  }
  pollfd p{c, POLLIN, 0};
  char buf[64] = {};
  if (poll(&p, 1, 1000) != 1 || read(c, buf, sizeof buf - 1) <= 0) {
    close(c);
    return -1;
  }
  if (strncmp(buf, "snapshot", 8) == 0) {
    *req = ControlRequest::kSnapshot;
  } else if (strncmp(buf, "flush", 5) == 0) {
    *req = ControlRequest::kFlush;
  } else if (strncmp(buf, "mark", 4) == 0) {
    *req = ControlRequest::kMark;
  } else if (strncmp(buf, "detach", 6) == 0) {
    *req = ControlRequest::kDetach;
  } else if (strncmp(buf, "status", 6) == 0) {
    *req = ControlRequest::kStatus;
  } else if (strncmp(buf, "findleaks", 9) == 0) {
    *req = ControlRequest::kFindleaks;
  } else {
    close(c);
    return -1;
  }
  return c;
}

void control_reply_text(int client, const char* text) {
  ssize_t w = write(client, text, strlen(text));
  (void)w;
  close(client);
}

void control_reply(int client, bool ok) {
  char msg[4200];
  int n = ok ? snprintf(msg, sizeof msg, "ok %s\n", g_output_path) : snprintf(msg, sizeof msg, "error the capture cannot be written\n");
  ssize_t w = write(client, msg, static_cast<size_t>(n));
  (void)w;
  close(client);
}

}  // namespace leakscope::agent
