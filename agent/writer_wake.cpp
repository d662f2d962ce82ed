// The writer thread's nap and its wake-ups (writer_internal.h). The writer naps up to 5 ms
// between looks, in poll() on an eventfd and on the control socket: stop and flush requests
// from the program (wake_writer: one write(), also safe in a signal handler) and a client
// connecting (`leakscope snapshot`, a scrape, the pytest plugin's mark) wake it at once.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include "agent/agent.h"
#include "agent/writer_internal.h"

namespace leakscope::agent {

namespace {
int g_wake_fd = -1;
dev_t g_wake_dev = 0;
ino_t g_wake_ino = 0;
// The program may close every descriptor and get this number back for a file of its own: never
// read or write 8 bytes of it (fstat is async-signal-safe).
bool wake_fd_ours() {
  struct stat st;
  return g_wake_fd >= 0 && fstat(g_wake_fd, &st) == 0 && st.st_dev == g_wake_dev && st.st_ino == g_wake_ino;
}
}  // namespace

void sleep_ns(long ns) {
  timespec ts{0, ns};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void wake_writer() {
  uint64_t one = 1;
  if (wake_fd_ours()) (void)!write(g_wake_fd, &one, sizeof one);
}

void open_wake_fd() {
  if (g_wake_fd >= 0) return;  // kept across detach/attach: one descriptor for the process's life
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return;  // then naps are plain 5 ms sleeps
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);  // out of the low numbers programs reuse
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return;
  }
  g_wake_dev = st.st_dev;
  g_wake_ino = st.st_ino;
  g_wake_fd = fd;
}

void close_wake_fd_in_child() {
  if (wake_fd_ours()) close(g_wake_fd);
  g_wake_fd = -1;
}

void reopen_wake_fd_in_child() {
  close_wake_fd_in_child();  // shared with the parent: a wake in one would wake both
  open_wake_fd();
}

void writer_nap(bool with_control) {
  pollfd p[2] = {{g_wake_fd, POLLIN, 0}, {with_control ? control_fd() : -1, POLLIN, 0}};  // poll skips -1
  const int r = poll(p, 2, 5);
  if (r <= 0) return;
  if (((p[0].revents | p[1].revents) & (POLLNVAL | POLLERR | POLLHUP)) || ((p[0].revents & POLLIN) && !wake_fd_ours())) {
    // A descriptor the program closed (or reused): stop waking on it, and nap out the 5 ms
    // rather than spin. (A closed control socket is control_poll's business.)
    if ((p[0].revents & (POLLNVAL | POLLERR | POLLHUP)) || ((p[0].revents & POLLIN) && !wake_fd_ours())) g_wake_fd = -1;
    sleep_ns(5 * 1000 * 1000);
    return;
  }
  if (p[0].revents & POLLIN) {
    uint64_t n;
    (void)!read(g_wake_fd, &n, sizeof n);
  }
}

}  // namespace leakscope::agent
