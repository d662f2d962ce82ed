// `findleaks`, `heapdump` and run's exit-time check: see findleaks.h and docs/findleaks.md.
#include "cli/findleaks.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "analysis/findleaks.h"
#include "analysis/findleaks_record.h"
#include "analysis/heap_dump.h"
#include "analysis/replay.h"
#include "capture/reader.h"
#include "cli/control_client.h"
#include "cli/inject.h"
#include "cli/stop_world.h"
#include "report/findleaks_report.h"
#include "report/render.h"
#include "report/sites.h"
#include "report/words.h"

namespace leakscope::cli {
namespace {

constexpr int kExitUsage = 2;

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 8 && s.find_first_not_of("0123456789") == std::string::npos;
}

struct Copy {
  analysis::HeapImage image;
  std::string capture_path;
  inject::CopyStats stats;
};

// Asks the agent of `pid` for its descriptor, copies the process, lets the agent go on.
// Returns "" or why not (one line, without "leakscope: ").
std::string copy_live(long pid, Copy* out) {
  if (std::string why = inject::preflight(static_cast<pid_t>(pid)); !why.empty()) return why;
  ControlClient c;
  if (!c.connect_to(pid))
    return "process " + std::to_string(pid) + " is not tracked by leakscope (start it with leakscope run, or leakscope attach " +
           std::to_string(pid) + ")";
  std::string reply;
  if (!c.send("findleaks\n") || !c.line(15000, &reply))
    return "process " + std::to_string(pid) + " did not answer (no reply within 15 s, or access refused)";
  if (reply.rfind("error ", 0) == 0) return "process " + std::to_string(pid) + " cannot be checked: " + reply.substr(6);
  unsigned long long desc = 0;
  char path[4200] = {};
  if (reply.rfind("ready ", 0) != 0 || sscanf(reply.c_str(), "ready %llx %4199[^\n]", &desc, path) < 1)
    return "process " + std::to_string(pid) + " gave an unexpected answer";
  std::string why = inject::copy_process(static_cast<pid_t>(pid), desc, &out->image, &out->stats);
  c.send("done\n");  // the agent goes on in any case
  if (!why.empty()) return why;
  if (!c.line(30000, &reply) || reply.rfind("ok ", 0) != 0)
    return "process " + std::to_string(pid) + " did not finish the exchange (it may have exited)";
  out->capture_path = reply.substr(3);
  return "";
}

// Symbolizes with the capture (a file, or bytes from a dump) and prints the result.
int print_result(const analysis::FindleaksResult& res, capture::Reader& reader, const report::Renderer& fmt,
                 const report::RenderOptions& opt, const report::FindleaksTarget& target) {
  analysis::Replay rp;
  rp.set_aggregate((reader.header().flags & capture::kFlagAggregate) != 0);
  reader.read_all(rp);
  rp.finish();
  report::Symbolizer sym(rp);
  report::FindleaksDoc doc{target, report::findleaks_out(res, sym)};
  std::cout << fmt.findleaks(doc, opt);
  return 0;
}

int fail(const std::string& why, int code = 1) {
  fprintf(stderr, "leakscope: %s\n", why.c_str());
  return code;
}

std::string stop_text(const inject::CopyStats& s) {  // heapdump's line
  char b[160];
  snprintf(b, sizeof b, "stopped %.3f s to copy %s", s.stopped_s, report::format_bytes(s.copied_bytes).c_str());
  return b;
}

}  // namespace

int cmd_findleaks(const std::string& target, const report::Renderer& fmt, const report::RenderOptions& opt) {
  try {
    struct stat st;
    if (!all_digits(target) || (stat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode))) {
      if (stat(target.c_str(), &st) != 0) return fail("no such heap dump or process: " + target, kExitUsage);
      analysis::Dump d;
      analysis::read_dump(target, &d);
      analysis::FindleaksResult res = analysis::find_leaks(d.image, analysis::FindleaksWhen::kDump);
      if (d.capture.empty()) return fail("the heap dump " + target + " holds no capture", kExitUsage);
      int mfd = memfd_create("leakscope-dump-capture", MFD_CLOEXEC);
      if (mfd < 0 || write(mfd, d.capture.data(), d.capture.size()) != static_cast<ssize_t>(d.capture.size()))
        return fail(std::string("cannot hold the dump's capture in memory: ") + strerror(errno));
      capture::Reader reader(mfd, target);
      close(mfd);
      report::FindleaksTarget t;
      t.pid = d.image.pid;
      t.dump = target;
      return print_result(res, reader, fmt, opt, t);
    }
    long pid = 0;
    if (!parse_pid(target, &pid)) return kExitUsage;
    Copy c;
    if (std::string why = copy_live(pid, &c); !why.empty())
      return fail(why, why.rfind("no process", 0) == 0 ? kExitUsage : 1);
    analysis::FindleaksResult res = analysis::find_leaks(c.image, analysis::FindleaksWhen::kLive);
    capture::Reader reader(c.capture_path);
    report::FindleaksTarget t;
    t.pid = static_cast<uint64_t>(pid);
    t.capture = c.capture_path;
    t.live = true;
    t.stopped_s = c.stats.stopped_s;
    t.copied_bytes = c.stats.copied_bytes;
    return print_result(res, reader, fmt, opt, t);
  } catch (const analysis::DumpError& e) {
    return fail(e.what(), kExitUsage);
  } catch (const analysis::ModelError& e) {
    return fail(e.what(), kExitUsage);
  } catch (const capture::CaptureError& e) {
    return fail(e.what(), kExitUsage);
  } catch (const std::bad_alloc&) {
    return fail("out of memory analysing " + target);
  }
}

int cmd_heapdump(const std::string& pid_text, const std::string& output, bool quiet) {
  long pid = 0;
  if (!parse_pid(pid_text, &pid)) return kExitUsage;
  if (std::string why = inject::preflight(static_cast<pid_t>(pid)); !why.empty())
    return fail(why, why.rfind("no process", 0) == 0 ? kExitUsage : 1);
  // Created before anything is asked of the process: O_EXCL, 0600, never through a link.
  int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return fail("cannot create " + output + " (" + strerror(errno) + ")" + (errno == EEXIST ? "; choose another name with -o" : ""),
                kExitUsage);
  auto give_up = [&](const std::string& why, int code) {
    close(fd);
    unlink(output.c_str());
    return fail(why, code);
  };
  try {
    Copy c;
    if (std::string why = copy_live(pid, &c); !why.empty()) return give_up(why, why.rfind("no process", 0) == 0 ? kExitUsage : 1);
    std::ifstream f(c.capture_path, std::ios::binary);
    std::stringstream cap;
    cap << f.rdbuf();
    auto t0 = std::chrono::steady_clock::now();
    analysis::write_dump(fd, c.image, cap.str());
    if (fsync(fd) != 0 || close(fd) != 0) {
      unlink(output.c_str());
      return fail("cannot write " + output + ": " + strerror(errno));
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    struct stat st{};
    stat(output.c_str(), &st);
    if (!quiet)
      printf("leakscope: heap dump of process %ld written to %s (%s; %s, written in %.2f s); see: leakscope findleaks %s\n",
             pid, output.c_str(), report::format_bytes(static_cast<uint64_t>(st.st_size)).c_str(), stop_text(c.stats).c_str(),
             secs, output.c_str());
    return 0;
  } catch (const analysis::DumpError& e) {
    return give_up(e.what(), 1);
  } catch (const std::bad_alloc&) {
    return give_up("out of memory copying process " + std::to_string(pid), 1);
  }
}

// ---- run --findleaks
// One thread does it all: while it traces the child, any wait by another thread of ours
// would be handed the child's ptrace stops (it is traced by its real parent's group), so the
// child's exit is watched through a pidfd and reaped only once it has exited.
struct ExitCheck::State {
  int listen = -1;
  bool copied = false;
  std::string why;  // the copy failed
  Copy copy;
  int reaped_status = -1;
};

ExitCheck::ExitCheck() : s_(std::make_unique<State>()) {
  // An unpredictable name in the abstract namespace: no file anywhere.
  std::random_device rd;
  char nm[64];
  snprintf(nm, sizeof nm, "leakscope-run/%d/%08x%08x", static_cast<int>(getpid()), rd(), rd());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "%s", nm);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 && listen(fd, 2) == 0) {
    s_->listen = fd;
    name_ = nm;
  } else if (fd >= 0) {
    close(fd);
  }
}

ExitCheck::~ExitCheck() {
  if (s_->listen >= 0) close(s_->listen);
}

void ExitCheck::serve_one(pid_t child) {
  int c = accept4(s_->listen, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return;
  ucred cred{};
  socklen_t cl = sizeof cred;
  char buf[128] = {};
  unsigned long long desc = 0;
  pollfd q{c, POLLIN, 0};
  // Only our child, and only once.
  if (!s_->copied && getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid == child &&
      poll(&q, 1, 5000) == 1 && read(c, buf, sizeof buf - 1) > 0 && sscanf(buf, "scan %llx", &desc) == 1) {
    s_->why = inject::copy_process(child, desc, &s_->copy.image, &s_->copy.stats);
    s_->copied = s_->why.empty();
    if (s_->copy.stats.reaped_status >= 0) s_->reaped_status = s_->copy.stats.reaped_status;
    ssize_t w = write(c, "done\n", 5);
    (void)w;
  }
  close(c);
}

int ExitCheck::wait_child(pid_t child) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  int status = 0;
  for (;;) {
    if (s_->reaped_status >= 0) return s_->reaped_status;
    if (pidfd < 0 || s_->listen < 0) break;  // nothing to serve with: a plain wait
    pollfd p[2] = {{pidfd, POLLIN, 0}, {s_->listen, POLLIN, 0}};
    int r = poll(p, 2, -1);
    if (r < 0 && errno != EINTR) break;
    if (r > 0 && (p[1].revents & POLLIN)) serve_one(child);
    if (r > 0 && (p[0].revents & POLLIN)) break;  // exited: reap it below
  }
  if (pidfd >= 0) close(pidfd);
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return s_->reaped_status >= 0 ? s_->reaped_status : 0;
  }
  return status;
}

bool ExitCheck::finish(const std::string& capture, bool* ran) {
  *ran = false;
  if (!s_->copied) {
    if (!s_->why.empty()) fprintf(stderr, "leakscope: findleaks at exit could not copy the process: %s\n", s_->why.c_str());
    else
      fprintf(stderr, "leakscope: findleaks: no check was made (the program ended without a normal exit: _exit, exec "
                      "failure or a signal)\n");
    return false;
  }
  try {
    analysis::FindleaksResult res = analysis::find_leaks(s_->copy.image, analysis::FindleaksWhen::kExit);
    *ran = true;
    std::string why = analysis::append_findleaks(capture, res);
    const auto& t = res.totals;
    std::string where = why.empty() ? "see: leakscope report " + capture : "not stored in the capture: " + why;
    if (t.lost_count() == 0)
      fprintf(stderr, "leakscope: findleaks: nothing lost (%s reachable in %s blocks); %s\n",
              report::format_bytes(t.reachable_bytes).c_str(), report::with_commas(t.reachable_count).c_str(), where.c_str());
    else
      fprintf(stderr, "leakscope: findleaks: %s lost in %s blocks (direct %s, indirect %s); %s\n",
              report::format_bytes(t.lost_bytes()).c_str(), report::with_commas(t.lost_count()).c_str(),
              report::format_bytes(t.direct_bytes).c_str(), report::format_bytes(t.indirect_bytes).c_str(), where.c_str());
    return t.lost_count() > 0;
  } catch (const analysis::ModelError& e) {
    fprintf(stderr, "leakscope: findleaks at exit: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    fprintf(stderr, "leakscope: findleaks at exit: out of memory\n");
  }
  return false;
}

}  // namespace leakscope::cli
