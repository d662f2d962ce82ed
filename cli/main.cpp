// leakscope command line: `run` starts a program with the agent preloaded (fork + execvp, no
// shell) and exits with the program's status; `report` analyses a capture; `diff` compares
// two captures or two snapshots of one (docs/diff.md). Errors are one line on stderr and a
// non-zero exit (2 for bad input or options, 127 for a missing command).
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "capture/reader.h"
#include "cli/attach_tree.h"
#include "cli/cli_docs.h"
#include "cli/control_client.h"
#include "cli/documents.h"
#include "cli/findleaks.h"
#include "cli/inject.h"
#include "cli/progress.h"
#include "cli/push.h"
#include "cli/serve.h"
#include "cli/track_options.h"
#include "cli/top.h"
#include "leakscope_version.h"
#include "report/diff.h"
#include "report/render.h"
#include "report/report.h"

namespace {

constexpr int kExitUsage = 2;

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string s(buf);
  return s.substr(0, s.rfind('/'));
}

std::string find_agent() {
  std::string d = self_dir();
  for (const std::string& cand : {d + "/libleakscope_agent.so", d + "/../lib/leakscope/libleakscope_agent.so"})
    if (access(cand.c_str(), R_OK) == 0) {
      char real[PATH_MAX];
      if (realpath(cand.c_str(), real)) return real;
    }
  return "";
}

pid_t g_child = -1;
void forward_signal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

// What the agent tracks and how (the same for run and attach), and how it is passed on: as
// "key=value" pairs the agent parses (agent.cpp, apply_option), in LEAKSCOPE_* variables for
// run, in a config string for attach.

struct RunOptions {
  leakscope::cli::ServeOptions serve;
  TrackOptions track;
  bool fail_on_leak = false;
  bool findleaks = false;  // a reachability check when tracking stops (docs/findleaks.md)
};

int cmd_run(const std::string& output_opt, bool quiet, const std::vector<std::string>& command,
            const RunOptions& ro) {
  if (command.empty()) {
    fprintf(stderr, "leakscope: run needs a command: leakscope run [-o CAPTURE] [--native] -- COMMAND [ARGS...]\n");
    return kExitUsage;
  }
  if (ro.track.flag("follow_fork") && ro.track.get("mode") == "events") {
    fprintf(stderr, "leakscope: --follow-fork needs the aggregate mode (not --mode events)\n");
    return kExitUsage;
  }
  std::string agent = find_agent();
  if (agent.empty()) {
    fprintf(stderr, "leakscope: cannot find libleakscope_agent.so next to the leakscope executable\n");
    return kExitUsage;
  }
  std::string output = output_opt;
  if (output.empty()) {
    std::string base = command[0].substr(command[0].rfind('/') == std::string::npos ? 0 : command[0].rfind('/') + 1);
    for (char& c : base)
      if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
    output = "leakscope-" + base + "-" + std::to_string(getpid()) + ".lsc";
  }
  int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  bool tracked = true;
  if (fd < 0) {
    if (errno == EEXIST) {
      fprintf(stderr, "leakscope: %s already exists; choose another name with -o\n", output.c_str());
      return kExitUsage;
    }
    // No capture possible (permission, disk): the program still runs, untracked.
    fprintf(stderr, "leakscope: cannot create %s (%s); running the program untracked\n", output.c_str(), strerror(errno));
    tracked = false;
  } else {
    close(fd);
  }
  char abs[PATH_MAX];
  std::string out_abs = tracked && realpath(output.c_str(), abs) ? abs : output;
  // run --findleaks: the agent asks this process to copy it when tracking stops.
  std::unique_ptr<leakscope::cli::ExitCheck> check;
  if (ro.findleaks && tracked) {
    check = std::make_unique<leakscope::cli::ExitCheck>();
    if (check->name().empty()) {
      fprintf(stderr, "leakscope: cannot open the socket --findleaks needs; running without the check\n");
      check.reset();
    }
  }

  // --serve and --push: checked (and bound) before the program starts, started once it has a pid.
  std::unique_ptr<leakscope::cli::Endpoints> endpoints;
  std::unique_ptr<leakscope::cli::Pusher> pusher;
  if (tracked && !leakscope::cli::prepare_companions(ro.serve, out_abs, command[0], quiet, &endpoints, &pusher)) {
    unlink(out_abs.c_str());
    return kExitUsage;
  }

  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The error pipe tells the parent whether execvp failed (CLOEXEC: closed on success).
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) {
    fprintf(stderr, "leakscope: pipe: %s\n", strerror(errno));
    return kExitUsage;
  }
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "leakscope: fork: %s\n", strerror(errno));
    unlink(out_abs.c_str());
    return kExitUsage;
  }
  if (pid == 0) {
    close(errpipe[0]);
    const char* prev = tracked ? getenv("LD_PRELOAD") : nullptr;
    if (prev && *prev) {
      setenv("LEAKSCOPE_ORIG_LD_PRELOAD", prev, 1);
      setenv("LD_PRELOAD", (agent + ":" + prev).c_str(), 1);
    } else if (tracked) {
      setenv("LD_PRELOAD", agent.c_str(), 1);
    }
    if (tracked) {
      setenv("LEAKSCOPE_OUTPUT", out_abs.c_str(), 1);
      setenv("LEAKSCOPE_PID", std::to_string(getpid()).c_str(), 1);
      for (const auto& kv : ro.track.pairs()) setenv(kv.env, kv.value.c_str(), 1);
      if (check) setenv("LEAKSCOPE_FINDLEAKS", check->name().c_str(), 1);
    }
    execvp(argv[0], argv.data());
    int e = errno;
    ssize_t w = write(errpipe[1], &e, sizeof e);
    (void)w;
    _exit(127);
  }
  close(errpipe[1]);
  g_child = pid;
  // Like a shell: the terminal's SIGINT/SIGQUIT reach the child directly; forward TERM/HUP.
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGTERM, forward_signal);
  signal(SIGHUP, forward_signal);
  int exec_errno = 0;
  ssize_t r;
  do {
    r = read(errpipe[0], &exec_errno, sizeof exec_errno);
  } while (r < 0 && errno == EINTR);
  close(errpipe[0]);
  if (endpoints && r != static_cast<ssize_t>(sizeof exec_errno)) endpoints->start(pid);
  if (pusher && r != static_cast<ssize_t>(sizeof exec_errno)) pusher->start(pid);
  int status = 0;
  if (check) {
    status = check->wait_child(pid);  // answers the child's scan request meanwhile
  } else {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  endpoints.reset();  // stops serving before the capture is judged
  pusher.reset();     // after one last push of the end state
  if (r == static_cast<ssize_t>(sizeof exec_errno)) {
    fprintf(stderr, "leakscope: cannot run %s: %s\n", command[0].c_str(), strerror(exec_errno));
    if (tracked) unlink(out_abs.c_str());
    return exec_errno == ENOENT ? 127 : 126;
  }
  struct stat st {};
  if (!tracked) {
  } else if (stat(out_abs.c_str(), &st) == 0 && st.st_size <= static_cast<off_t>(leakscope::capture::kHeaderSize)) {
    fprintf(stderr, "leakscope: no events reached %s (the agent said why above, or the program is static or set-id and ignores LD_PRELOAD)\n",
            output.c_str());
  } else {
    bool clean = false;
    try {
      leakscope::capture::Reader check(out_abs);
      clean = check.ends_with_clean_stop();
    } catch (const leakscope::capture::CaptureError&) {
    }
    if (!clean)
      fprintf(stderr, "leakscope: the capture %s is incomplete (the program was killed, or the capture could not be written); leakscope report shows what it holds\n",
              output.c_str());
    else if (!quiet)
      fprintf(stderr, "leakscope: capture written to %s; see: leakscope report %s\n", output.c_str(), output.c_str());
  }
  bool lost = false;
  if (check) {
    bool ran = false;
    lost = check->finish(out_abs, &ran);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && ro.fail_on_leak && tracked) {
    // The CI gate: analyse the capture now and fail when the verdict is leak.
    try {
      auto rep = leakscope::report::build_report(out_abs);
      if (rep.verdict == "leak") {
        fprintf(stderr, "leakscope: verdict: leak (%zu leaking site%s); exiting with status %d (--fail-on-leak)\n",
                rep.leaks.size(), rep.leaks.size() == 1 ? "" : "s", leakscope::report::kLeakExitStatus);
        return leakscope::report::kLeakExitStatus;
      }
      fprintf(stderr, "leakscope: verdict: %s\n", rep.verdict.c_str());
    } catch (const leakscope::capture::CaptureError& e) {
      fprintf(stderr, "leakscope: cannot judge the capture (%s)\n", e.what());
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && lost) {
    fprintf(stderr, "leakscope: exiting with status %d (--findleaks: memory was lost)\n", leakscope::cli::kLostExitStatus);
    return leakscope::cli::kLostExitStatus;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    // Exit the way the program did, without a core file of our own.
    raise(sig);
    return 128 + sig;
  }
  return 1;
}

using leakscope::cli::control_request;
using leakscope::cli::existing_pid;
using leakscope::cli::process_exists;

// `leakscope snapshot PID`: asks a tracked process (run or attach) for a snapshot now.
int cmd_snapshot(const std::string& pid_text) {
  long pid = 0;
  if (!existing_pid(pid_text, &pid)) return kExitUsage;
  std::string reply;
  if (!control_request(pid, "snapshot\n", 30000, &reply)) {  // a retention walk may take 10 s
    fprintf(stderr, "leakscope: process %ld is not tracked by leakscope (start it with leakscope run, or leakscope attach %ld)\n",
            pid, pid);
    return 1;
  }
  if (reply.rfind("ok ", 0) == 0) {
    printf("leakscope: snapshot of process %ld written to %s\n", pid, reply.substr(3).c_str());
    return 0;
  }
  fprintf(stderr, "leakscope: process %ld did not take a snapshot (%s)\n", pid,
          reply.empty() ? "no answer within 10 s, or access refused" : reply.c_str());
  return 1;
}

struct AttachOptions {
  leakscope::cli::ServeOptions serve;
  TrackOptions track;
  std::string output;
  double duration_s = 0;
  bool quiet = false;
  bool children = false;  // --children (cli/attach_tree.cpp)
};

int cmd_detach(const std::string& pid_text, bool quiet);

// attach --serve/--push: serves and pushes until the process exits, --duration ends or
// SIGINT/SIGTERM arrives, then detaches as `leakscope detach` would.
int serve_attached(leakscope::cli::Endpoints* endpoints, leakscope::cli::Pusher* pusher, long pid,
                   const AttachOptions& o) {
  if (leakscope::cli::companions_until_exit(endpoints, pusher, pid, o.duration_s))
    return cmd_detach(std::to_string(pid), o.quiet);
  if (!o.quiet) printf("leakscope: process %ld exited; stopped serving\n", pid);
  return 0;
}

// `leakscope attach PID`: loads the agent into a running process (cli/inject.cpp).
int cmd_attach(const std::string& pid_text, const AttachOptions& o) {
  long pid = 0;
  if (!existing_pid(pid_text, &pid)) return kExitUsage;
  if (pid == getpid()) {
    fprintf(stderr, "leakscope: cannot attach to itself\n");
    return kExitUsage;
  }
  std::string reply;
  if (control_request(pid, "status\n", 5000, &reply)) {
    if (reply.rfind("run ", 0) == 0)
      fprintf(stderr, "leakscope: process %ld is already tracked: it was started by leakscope run (capture %s)\n", pid,
              reply.substr(4).c_str());
    else if (reply.rfind("attached ", 0) == 0)
      fprintf(stderr, "leakscope: process %ld is already attached (capture %s); detach first: leakscope detach %ld\n",
              pid, reply.substr(9).c_str(), pid);
    else
      fprintf(stderr, "leakscope: process %ld already has a leakscope agent that does not answer\n", pid);
    return 1;
  }
  std::string agent = find_agent();
  if (agent.empty()) {
    fprintf(stderr, "leakscope: cannot find libleakscope_agent.so next to the leakscope executable\n");
    return kExitUsage;
  }
  if (std::string why = leakscope::inject::preflight(static_cast<pid_t>(pid)); !why.empty()) {
    fprintf(stderr, "leakscope: cannot attach to process %ld: %s\n", pid, why.c_str());
    return why.rfind("no process", 0) == 0 ? kExitUsage : 1;
  }
  std::string comm;
  if (FILE* f = fopen(("/proc/" + std::to_string(pid) + "/comm").c_str(), "re")) {
    char buf[64] = {};
    if (fgets(buf, sizeof buf, f)) comm = buf;
    fclose(f);
  }
  while (!comm.empty() && (comm.back() == '\n' || comm.back() == ' ')) comm.pop_back();
  for (char& c : comm)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  if (comm.empty()) comm = "process";
  std::string output = o.output.empty() ? "leakscope-" + comm + "-" + std::to_string(pid) + ".lsc" : o.output;
  int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    fprintf(stderr, "leakscope: cannot create %s (%s)%s\n", output.c_str(), strerror(errno),
            errno == EEXIST ? "; choose another name with -o" : "");
    return kExitUsage;
  }
  // The process opens the file itself: as root attaching to another user's process, hand the
  // (still private, 0600) file to that user.
  struct stat ps;
  if (geteuid() == 0 && stat(("/proc/" + std::to_string(pid)).c_str(), &ps) == 0 && ps.st_uid != 0) {
    if (fchown(fd, ps.st_uid, ps.st_gid) != 0) {
    }
  }
  close(fd);
  char abs[PATH_MAX];
  std::string out_abs = realpath(output.c_str(), abs) ? abs : output;
  std::unique_ptr<leakscope::cli::Endpoints> endpoints;
  std::unique_ptr<leakscope::cli::Pusher> pusher;
  if (!leakscope::cli::prepare_companions(o.serve, out_abs, comm, o.quiet, &endpoints, &pusher)) {
    unlink(out_abs.c_str());
    return kExitUsage;
  }
  std::string base_cfg = "duration=" + std::to_string(o.duration_s) + "\n";
  for (const auto& kv : o.track.pairs()) base_cfg += std::string(kv.key) + "=" + kv.value + "\n";
  const std::string cfg = base_cfg + "output=" + out_abs + "\n" + (o.children ? "tree_root=" + out_abs + "\n" : "");
  leakscope::inject::Result r = leakscope::inject::attach(static_cast<pid_t>(pid), agent, cfg);
  if (!r.ok) {
    struct stat st;
    if (stat(out_abs.c_str(), &st) == 0 && st.st_size == 0) unlink(out_abs.c_str());
    fprintf(stderr, "leakscope: cannot attach to process %ld: %s\n", pid, r.error.c_str());
    return r.error.rfind("no process", 0) == 0 ? kExitUsage : 1;
  }
  if (!o.quiet)
    printf("leakscope: attached to process %ld in %.3f s; capture %s; stop with: leakscope detach %ld\n", pid,
           r.seconds, out_abs.c_str(), pid);
  if (o.children) leakscope::cli::attach_descendants(pid, out_abs, agent, base_cfg, o.quiet);
  fflush(stdout);
  if (endpoints || pusher) return serve_attached(endpoints.get(), pusher.get(), pid, o);
  if (o.duration_s > 0) {
    // The agent detaches itself at the deadline; wait for it (the socket goes away).
    timespec ts{0, 100 * 1000 * 1000};
    double waited = 0;
    while (waited < o.duration_s + 30 && process_exists(pid) && control_request(pid, "status\n", 2000, &reply)) {
      nanosleep(&ts, nullptr);
      waited += 0.1;
    }
    if (!o.quiet) printf("leakscope: detached from process %ld; see: leakscope report %s\n", pid, out_abs.c_str());
  }
  fflush(stdout);
  return 0;
}

// `leakscope detach PID`: undoes an attach; the process runs on untouched.
int cmd_detach(const std::string& pid_text, bool quiet) {
  long pid = 0;
  if (!existing_pid(pid_text, &pid)) return kExitUsage;
  std::string reply;
  if (!control_request(pid, "detach\n", 30000, &reply)) {
    fprintf(stderr, "leakscope: process %ld is not attached\n", pid);
    return 1;
  }
  if (reply.rfind("ok ", 0) == 0) {
    if (!quiet) printf("leakscope: detached from process %ld; see: leakscope report %s\n", pid, reply.substr(3).c_str());
    return 0;
  }
  fprintf(stderr, "leakscope: cannot detach from process %ld: %s\n", pid,
          reply.rfind("error ", 0) == 0 ? reply.substr(6).c_str() : "no answer within 30 s");
  return 1;
}

// One example per subcommand (name, example), the last line of its --help.
constexpr std::pair<const char*, const char*> kExamples[] = {
    {"run", "leakscope run -o run.lsc -- python3 app.py"},
    {"attach", "leakscope attach 4242 --duration 600 -o app.lsc"},
    {"detach", "leakscope detach 4242"},
    {"snapshot", "leakscope snapshot 4242"},
    {"top", "leakscope top 4242 --interval 5"},
    {"report", "leakscope report run.lsc --format html -o report.html"},
    {"diff", "leakscope diff run.lsc@60 run.lsc"},
    {"findleaks", "leakscope findleaks 4242"},
    {"heapdump", "leakscope heapdump 4242 -o app.heap"},
    {"export", "leakscope export run.lsc --format pprof -o heap.pb.gz"},
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"leakscope: find memory leaks in Python and native programs"};
  app.require_subcommand(1);
  app.set_version_flag("-V,--version", std::string("leakscope ") + LEAKSCOPE_VERSION, "print the version and exit");
  std::string output;
  bool quiet = false;
  std::vector<std::string> command;
  auto* run = app.add_subcommand("run", "run COMMAND with the agent and write a capture");
  run->add_option("-o,--output", output, "capture file to create (default leakscope-PROGRAM-PID.lsc)");
  run->add_flag("-q,--quiet", quiet, "do not print where the capture went");
  RunOptions ro;
  ro.track.add_to(run, true);
  leakscope::cli::add_serve_options(run, ro.serve);
  run->add_flag("--fail-on-leak", ro.fail_on_leak,
                "exit with status 86 when the verdict is leak (and COMMAND itself exited 0)");
  run->add_flag("--findleaks", ro.findleaks,
                "check reachability when tracking stops (at exit) and store the result in the capture; exit with "
                "status 23 when memory was lost (and COMMAND itself exited 0)");
  run->add_option("command", command, "the command and its arguments, after --")->required();
  // --format of each subcommand: the names in the renderer table that render its kind of
  // document, the first by default.
  using leakscope::report::Document;
  using leakscope::report::renderer_names;
  using leakscope::report::renderer_choices;
  const std::vector<std::string> formats = renderer_names(Document::kReport);
  const std::string limits = leakscope::report::renderer_default_limits(Document::kReport);
  const std::string out_help = "write the document to this new file (O_EXCL, mode 0600) instead of stdout";
  // --limit (0: the format's default) and --all-frames of report, diff and findleaks
  const std::string all_frames_help =
      "text: show every frame of every stack (by default the import machinery and the frames far from the "
      "program's own code are folded into counted lines; JSON always has every frame)";
  std::string path, format = formats.front(), rep_out;
  leakscope::report::RenderOptions rep_opt{0, false};
  std::string att_pid;
  AttachOptions ao;
  auto* att = app.add_subcommand("attach", "load the agent into a running process (ptrace, no restart)");
  att->add_option("pid", att_pid, "process id")->required();
  att->add_option("-o,--output", ao.output, "capture file to create (default leakscope-NAME-PID.lsc)");
  att->add_option("--duration", ao.duration_s, "detach after this many seconds (default: stay until leakscope detach)")
      ->check(CLI::Range(0.0, 1e9));
  att->add_flag("-q,--quiet", ao.quiet, "print nothing on success");
  att->add_flag("--children", ao.children,
                "also every descendant (a pre-fork server's workers), each into CAPTURE-STEM.PID.lsc, and the "
                "children they fork later (docs/process-trees.md); detach with detach --children");
  ao.track.add_to(att, false);
  leakscope::cli::add_serve_options(att, ao.serve);
  std::string det_pid;
  bool det_quiet = false, det_children = false;
  auto* det = app.add_subcommand("detach", "undo leakscope attach: the process runs on at its old speed");
  det->add_option("pid", det_pid, "process id")->required();
  det->add_flag("-q,--quiet", det_quiet, "print nothing on success");
  det->add_flag("--children", det_children, "also every attached descendant (attach --children)");
  std::string snap_pid;
  auto* snap = app.add_subcommand("snapshot", "take a snapshot now in a tracked process (run or attach)");
  snap->add_option("pid", snap_pid, "process id")->required();
  auto* rep = app.add_subcommand("report", "show what was live when tracking stopped");
  rep->add_option("capture", path, "capture file")->required();
  rep->add_option("--format", format, renderer_choices(Document::kReport))->check(CLI::IsMember(formats));
  rep->add_option("-o,--output", rep_out, out_help);
  rep->add_option("--limit", rep_opt.limit, "how many stacks to show (default " + limits + ")");
  rep->add_flag("--all-frames", rep_opt.all_frames, all_frames_help);
  // --pid of report, diff and export: one process of a process tree (docs/process-trees.md).
  uint64_t tree_pid = 0;
  const std::string pid_help = "one process of a process tree (run --follow-fork, attach --children): its capture "
                               "alone (default: the root's, with the tree merged)";
  rep->add_option("--pid", tree_pid, pid_help)->check(CLI::Range(static_cast<uint64_t>(1), static_cast<uint64_t>(1) << 32));
  std::string diff_a, diff_b, diff_format = renderer_names(Document::kDiff).front(), diff_out;
  leakscope::report::RenderOptions diff_opt{0, false};
  auto* dif = app.add_subcommand("diff", "show what grew between two captures, or two snapshots of one (CAPTURE@SECONDS)");
  dif->add_option("a", diff_a, "the earlier side: CAPTURE or CAPTURE@SECONDS")->required();
  dif->add_option("b", diff_b, "the later side: CAPTURE or CAPTURE@SECONDS")->required();
  dif->add_option("--format", diff_format, renderer_choices(Document::kDiff))
      ->check(CLI::IsMember(renderer_names(Document::kDiff)));
  dif->add_option("-o,--output", diff_out, out_help);
  dif->add_option("--limit", diff_opt.limit, "how many sites that grew, and that shrank, to show (default " + limits + ")");
  dif->add_flag("--all-frames", diff_opt.all_frames, all_frames_help);
  dif->add_option("--pid", tree_pid, "one process of a process tree on both sides (run --follow-fork)")
      ->check(CLI::Range(static_cast<uint64_t>(1), static_cast<uint64_t>(1) << 32));
  std::string fl_target, fl_format = renderer_names(Document::kFindleaks).front(), dump_pid, dump_out;
  leakscope::report::RenderOptions fl_opt{0, false};
  bool dump_quiet = false;
  auto* fl = app.add_subcommand("findleaks", "find lost blocks and leaked references in a tracked process or a heap dump");
  fl->add_option("target", fl_target, "process id (started with run, or attached) or heap dump file")->required();
  fl->add_option("--format", fl_format, renderer_choices(Document::kFindleaks))
      ->check(CLI::IsMember(renderer_names(Document::kFindleaks)));
  fl->add_option("--limit", fl_opt.limit, "how many groups of lost blocks to show (default " + limits + ")");
  fl->add_flag("--all-frames", fl_opt.all_frames, all_frames_help);
  auto* hd = app.add_subcommand("heapdump", "write what findleaks needs of a tracked process to a file");
  hd->add_option("pid", dump_pid, "process id (started with run, or attached)")->required();
  hd->add_option("-o,--output", dump_out, "heap dump file to create (O_EXCL, mode 0600)")->required();
  hd->add_flag("-q,--quiet", dump_quiet, "print nothing on success");
  std::string exp_path, exp_format = renderer_names(Document::kProfile).front(), exp_out;
  std::optional<double> exp_at;
  auto* exp = app.add_subcommand("export", "write live memory by stack in a format other tools read (docs/exports.md)");
  exp->add_option("capture", exp_path, "capture file")->required();
  exp->add_option("--format", exp_format, renderer_choices(Document::kProfile))
      ->check(CLI::IsMember(renderer_names(Document::kProfile)));
  exp->add_option("--at", exp_at, "the moment to export, in seconds since the start (default: the end)");
  exp->add_option("-o,--output", exp_out, out_help);
  exp->add_option("--pid", tree_pid, pid_help)->check(CLI::Range(static_cast<uint64_t>(1), static_cast<uint64_t>(1) << 32));
  leakscope::cli::TopOptions top_opt;
  auto* top = leakscope::cli::add_top_command(app, top_opt);
  for (const auto& [name, line] : kExamples) app.get_subcommand(name)->footer(std::string("example: ") + line);
  if (int status; leakscope::cli::cli_docs(app, argc, argv, std::string("leakscope ") + LEAKSCOPE_VERSION, &status)) return status;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    fprintf(stderr, "leakscope: %s (see leakscope --help)\n", what.c_str());
    return kExitUsage;
  }
  if (*run && ro.findleaks && ro.track.number("sample_rate") != 0) {
    fprintf(stderr, "leakscope: --findleaks needs every block: it cannot be combined with --sample-rate\n");
    return kExitUsage;
  }
  if (*run) return cmd_run(output, quiet, command, ro);
  if (*fl) {
    const leakscope::report::Renderer& f = *leakscope::report::find_renderer(fl_format, Document::kFindleaks);
    if (!fl_opt.limit) fl_opt.limit = f.default_limit;
    return leakscope::cli::cmd_findleaks(fl_target, f, fl_opt);
  }
  if (*hd) return leakscope::cli::cmd_heapdump(dump_pid, dump_out, dump_quiet);
  if (*snap) return cmd_snapshot(snap_pid);
  if (*top) return leakscope::cli::cmd_top(top_opt);
  if (*att) {
    if (ao.children && ao.track.get("mode") == "events") {
      fprintf(stderr, "leakscope: --children needs the aggregate mode (not --mode events)\n");
      return kExitUsage;
    }
    ao.track.set("follow_fork", ao.children ? "1" : "0");  // the tree's later forks too
    return cmd_attach(att_pid, ao);
  }
  if (*det) {
    int rc = cmd_detach(det_pid, det_quiet);
    long p = 0;
    if (det_children && existing_pid(det_pid, &p) && leakscope::cli::detach_descendants(p, det_quiet) > 0 && rc == 1)
      rc = 0;  // the root was gone or not attached, its descendants were
    return rc;
  }
  const std::optional<uint64_t> pid_opt = tree_pid ? std::optional<uint64_t>(tree_pid) : std::nullopt;
  if (*rep)
    return leakscope::cli::cmd_report(path, *leakscope::report::find_renderer(format, Document::kReport), rep_opt,
                                      rep_out, pid_opt);
  if (*dif)
    return leakscope::cli::cmd_diff(diff_a, diff_b, *leakscope::report::find_renderer(diff_format, Document::kDiff),
                                    diff_opt, diff_out, pid_opt);
  if (*exp)
    return leakscope::cli::cmd_export(exp_path, *leakscope::report::find_renderer(exp_format, Document::kProfile),
                                      exp_at, exp_out, pid_opt);
  return kExitUsage;
}
