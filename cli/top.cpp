// `leakscope top PID` (docs/top.md): every interval, "flush" on the control socket, the report
// built from the capture, one frame drawn. Plain ANSI escapes on a terminal (alternate screen,
// non-canonical input for `q`), plain text frames otherwise.
#include "cli/top.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "capture/reader.h"
#include "cli/control_client.h"
#include "report/asyncio_report.h"
#include "report/report.h"
#include "report/sites.h"
#include "report/stack_view.h"
#include "report/words.h"

namespace leakscope::cli {
namespace {

using report::format_bytes;
using report::FrameOut;
using report::rate_text;
using report::sparkline;

constexpr int kExitUsage = 2;
constexpr int kFlushTimeoutMs = 10000;
constexpr size_t kHistory = 40;     // refreshes a site's sparkline keeps (top's own history)
constexpr size_t kPipedSites = 10;
constexpr size_t kSparkCells = 12;  // a site's sparkline, so that its name fits in 80 columns  // sites in a piped frame (a terminal shows what fits)

// Signals end the loop (or redraw, SIGWINCH) through a pipe the loop polls: the handler only
// writes a byte, so the terminal is restored by ordinary code.
int g_sigpipe[2] = {-1, -1};
volatile sig_atomic_t g_stop = 0;
bool stopping() { return g_stop != 0; }
void on_signal(int sig) {
  if (sig != SIGWINCH) g_stop = 1;
  unsigned char b = static_cast<unsigned char>(sig);
  ssize_t w = write(g_sigpipe[1], &b, 1);
  (void)w;
}

// The terminal while `top` draws on it; the destructor puts it back as it was.
class Screen {
 public:
  explicit Screen(bool tty) : tty_(tty) {
    if (!tty_) return;
    keys_ = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0;
    if (keys_) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG stays: Ctrl-C is SIGINT
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    fputs("\x1b[?1049h\x1b[?25l", stdout);  // alternate screen, hide the cursor
    fflush(stdout);
  }
  ~Screen() {
    if (!tty_) return;
    fputs("\x1b[?25h\x1b[?1049l", stdout);
    fflush(stdout);
    if (keys_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  Screen(const Screen&) = delete;
  Screen& operator=(const Screen&) = delete;
  bool keys() const { return keys_; }
  void draw(const std::vector<std::string>& lines) const {
    std::string out;
    if (tty_) {
      winsize ws{};
      size_t rows = 24, cols = 80;
      if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) rows = ws.ws_row, cols = ws.ws_col;
      out = "\x1b[H";
      for (size_t i = 0; i < lines.size() && i < rows; i++) {
        out += cut(lines[i], cols);
        out += i + 1 < rows ? "\x1b[K\r\n" : "\x1b[K";
      }
      out += "\x1b[J";
    } else {
      for (const auto& l : lines) out += l + "\n";
      out += "\n";
    }
    fwrite(out.data(), 1, out.size(), stdout);
    fflush(stdout);
  }

 private:
  // The first `cols` characters of a UTF-8 line (sparklines are 3 bytes a cell).
  static std::string cut(const std::string& s, size_t cols) {
    size_t chars = 0, i = 0;
    for (; i < s.size(); i++) {
      if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && chars++ == cols) break;
    }
    return s.substr(0, i);
  }
  bool tty_, keys_ = false;
  termios saved_{};
};

// "file:line in function" of the frame a site is known by: its first frame in the program's
// own code, else its first frame with a function name (an interpreter without symbols has
// none for its innermost frames), else its innermost.
std::string site_name(const std::vector<FrameOut>& frames) {
  if (frames.empty()) return "<no stack>";
  const FrameOut* f = nullptr;
  for (const auto& fr : frames)
    if (report::frame_kind(fr) == report::FrameKind::kOwn) {
      f = &fr;
      break;
    }
  for (size_t i = 0; !f && i < frames.size(); i++)
    if (!frames[i].function.empty() && frames[i].function != "??") f = &frames[i];
  if (!f) f = &frames.front();
  std::string file = f->file.empty() ? f->module : f->file;
  file = file.substr(file.rfind('/') == std::string::npos ? 0 : file.rfind('/') + 1);
  std::string where = file.empty() ? "" : file + (f->line ? ":" + std::to_string(f->line) : "") + " in ";
  return where + (f->function.empty() ? "??" : f->function);
}

struct SiteRow {
  std::string key, name, layer;
  double bytes = 0, rate = 0;  // rate: bytes/s (the verdict's for leaks, else top's own)
  bool leak = false, rate_known = true;  // not known: a site's first refresh
  std::vector<double> series;
};

// What `top` remembers between refreshes: each site's live bytes at every refresh it saw.
struct History {
  double t_s = -1;
  std::map<std::string, std::vector<double>> bytes;
};

std::vector<SiteRow> site_rows(const report::Report& r, History& h) {
  std::vector<SiteRow> rows;
  std::map<std::string, std::vector<double>> seen;
  double dt = h.t_s >= 0 ? r.duration_s - h.t_s : 0;
  for (const auto& l : r.leaks)
    rows.push_back({report::frames_key(l.layer, l.frames), site_name(l.frames), l.layer, l.bytes, l.rate_bytes_per_s,
                    true, true, l.series_bytes});
  for (const auto& s : r.stacks) {
    std::string key = report::frames_key(s.layer, s.frames);
    if (seen.count(key)) continue;  // two stacks that symbolize alike: the first (bigger) stands
    auto& mine = seen[key] = h.bytes.count(key) ? h.bytes[key] : std::vector<double>{};
    double before = mine.empty() ? static_cast<double>(s.bytes) : mine.back();
    mine.push_back(static_cast<double>(s.bytes));
    if (mine.size() > kHistory) mine.erase(mine.begin());
    if (std::any_of(rows.begin(), rows.end(), [&](const SiteRow& x) { return x.key == key; })) continue;
    double rate = dt > 0 ? (static_cast<double>(s.bytes) - before) / dt : 0;
    rows.push_back({key, site_name(s.frames), s.layer, static_cast<double>(s.bytes), rate, false, dt > 0 && mine.size() > 1, mine});
  }
  h.bytes = std::move(seen);
  h.t_s = r.duration_s;
  // Leaks first (fastest first), then what grew fastest since the last refresh, then biggest.
  std::stable_sort(rows.begin(), rows.end(), [](const SiteRow& a, const SiteRow& b) {
    if (a.leak != b.leak) return a.leak;
    if (a.rate != b.rate) return a.rate > b.rate;
    return a.bytes > b.bytes;
  });
  return rows;
}

std::string signed_rate(double bytes_per_s) {
  if (bytes_per_s == 0) return "0 B/s";
  return (bytes_per_s > 0 ? "+" : "-") + rate_text(std::fabs(bytes_per_s));
}

void memory_lines(const report::Report& r, std::vector<std::string>& out) {
  char line[512];
  out.push_back("Memory by layer (over the run):");
  auto series = [&](const char* name, double analysis::ProcessPoint::*field) {
    std::vector<double> v;
    for (const auto& p : r.timeline) v.push_back(p.*field);
    snprintf(line, sizeof line, "  %-22s %10s  %s", name, format_bytes(static_cast<uint64_t>(v.empty() ? 0 : v.back())).c_str(),
             sparkline(v, 30).c_str());
    out.push_back(line);
  };
  series("RSS", &analysis::ProcessPoint::rss);
  series("tracked live", &analysis::ProcessPoint::live);
  if (r.python_version) series("live Python objects", &analysis::ProcessPoint::python);
  series("glibc in use", &analysis::ProcessPoint::glibc_in_use);
  series("glibc free, retained", &analysis::ProcessPoint::glibc_free);
}

std::vector<std::string> frame_lines(long pid, const std::string& how, const report::Report& r, History& h,
                                     double interval_s, size_t max_sites) {
  std::vector<std::string> out;
  char line[1024];
  std::string cmd;
  for (const auto& a : r.argv) cmd += (cmd.empty() ? "" : " ") + a;
  snprintf(line, sizeof line, "leakscope top: process %ld (%s) %s", pid, how.c_str(), cmd.c_str());
  out.push_back(line);
  snprintf(line, sizeof line, "tracked %.1f s, %llu snapshots; refresh every %g s; q or Ctrl-C quits", r.duration_s,
           static_cast<unsigned long long>(r.snapshots), interval_s);
  out.push_back(line);
  out.push_back("");
  std::string v = r.verdict;
  for (auto& ch : v) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
  out.push_back("Verdict: " + v + (r.process_verdict.empty() || r.process_verdict == r.verdict ? "" : " (" + r.process_verdict + ")"));
  for (const auto& f : r.findings) out.push_back("  - " + f.kind + (f.layer.empty() ? "" : " [" + f.layer + "]") + ": " + f.text);
  out.push_back("");
  std::vector<SiteRow> rows = site_rows(r, h);
  out.push_back("Sites, fastest-growing first (rate, live now, live over time):");
  if (rows.empty()) out.push_back("  (nothing live)");
  for (size_t i = 0; i < rows.size() && i < max_sites; i++) {
    const SiteRow& s = rows[i];
    // The name last but before the layer: on a narrow terminal the line is cut at its end.
    std::string spark = sparkline(s.series, kSparkCells);
    spark.append(kSparkCells - spark.size() / 3, ' ');  // 3 bytes a cell: pad to the width in cells
    snprintf(line, sizeof line, "%-4s %13s %10s  %s %s  [%s]", s.leak ? "LEAK" : "", s.rate_known ? signed_rate(s.rate).c_str() : "-",
             format_bytes(static_cast<uint64_t>(s.bytes)).c_str(), spark.c_str(), s.name.c_str(),
             s.layer.c_str());
    out.push_back(line);
  }
  out.push_back("");
  memory_lines(r, out);
  if (r.asyncio && !r.asyncio->pending.empty()) {
    out.push_back("");
    snprintf(line, sizeof line, "Pending asyncio tasks: %.0f  %s", r.asyncio->pending.back(),
             sparkline(r.asyncio->pending, 30).c_str());
    out.push_back(line);
    if (r.asyncio->growth_per_s) {
      snprintf(line, sizeof line, "  piling up: %+.1f tasks/s", *r.asyncio->growth_per_s);
      out.push_back(line);
    }
  }
  return out;
}

// Waits up to `ms` for a key or a signal. Returns false when `top` should stop; redraws the
// last frame on SIGWINCH.
bool wait_for(int ms, const Screen& screen, const std::vector<std::string>& last) {
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
    if (left <= 0) return true;
    pollfd p[2] = {{g_sigpipe[0], POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int n = poll(p, screen.keys() ? 2 : 1, static_cast<int>(left));
    if (n <= 0) continue;  // timeout or EINTR: the loop above decides
    if (p[0].revents & POLLIN) {
      unsigned char sig = 0;
      while (read(g_sigpipe[0], &sig, 1) == 1) {
      }
      if (stopping()) return false;
      screen.draw(last);  // SIGWINCH: the same frame, cut to the new size
      continue;
    }
    if (screen.keys() && (p[1].revents & (POLLIN | POLLHUP))) {
      char c[16];
      ssize_t got = read(STDIN_FILENO, c, sizeof c);
      if (got <= 0) return true;
      for (ssize_t i = 0; i < got; i++)
        if (c[i] == 'q' || c[i] == 'Q') return false;
    }
  }
}

// Gone, or a zombie its parent (`leakscope run`) has not reaped yet: either way it has exited.
bool exited(long pid) {
  if (!process_exists(pid)) return true;
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
  if (!f) return true;
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  const char* paren = strrchr(buf, ')');  // the state follows "(comm)", and comm may hold anything
  return n == 0 || !paren || paren[1] == 0 || paren[2] == 'Z' || paren[2] == 'X';
}

void install_signals() {
  if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGWINCH}) sigaction(sig, &sa, nullptr);
}

}  // namespace

CLI::App* add_top_command(CLI::App& app, TopOptions& o) {
  auto* top = app.add_subcommand("top", "watch a tracked process live: verdict, growing sites, layers (docs/top.md)");
  top->add_option("pid", o.pid, "process id (started with run, or attached)")->required();
  top->add_option("--interval", o.interval_s, "seconds between refreshes (default 2)")->check(CLI::Range(0.1, 3600.0));
  top->add_flag("--once", o.once, "print one frame and exit");
  top->add_option("-n,--frames", o.frames, "print this many frames and exit (default: until q or Ctrl-C)")
      ->check(CLI::Range(1u, 1000000u));
  return top;
}

int cmd_top(const TopOptions& o) {
  long pid = 0;
  if (!existing_pid(o.pid, &pid)) return kExitUsage;
  std::string status;
  if (!control_request(pid, "status\n", 5000, &status) || status.empty()) {
    fprintf(stderr, "leakscope: process %ld is not tracked by leakscope (start it with leakscope run, or leakscope attach %ld)\n",
            pid, pid);
    return 1;
  }
  std::string how = status.substr(0, status.find(' '));
  unsigned frames = o.once ? 1 : o.frames;
  install_signals();
  bool tty = isatty(STDOUT_FILENO);
  History history;
  report::SymbolCache symbols;  // the DWARF is read once, not at every refresh
  report::BuildOptions bo;
  bo.symbols = &symbols;
  std::vector<std::string> good, last;  // the last good frame, the frame on screen
  unsigned drawn = 0;
  std::string ended;
  {
    Screen screen(tty && frames != 1);
    while (!stopping()) {
      std::string reply;
      if (!control_request(pid, "flush\n", kFlushTimeoutMs, &reply)) {
        if (stopping()) break;
        ended = exited(pid) ? "exited" : "is no longer tracked";
        break;
      }
      std::string error;
      if (reply.rfind("ok ", 0) != 0) {
        error = "did not flush (" + (reply.empty() ? std::string("no answer in time") : reply) + ")";
      } else {
        try {
          good = frame_lines(pid, how, report::build_report(reply.substr(3), bo), history, o.interval_s,
                             tty ? SIZE_MAX : kPipedSites);
        } catch (const capture::CaptureError& e) {
          error = "cannot read " + reply.substr(3) + " (" + e.what() + ")";
        }
      }
      // A failed refresh: one line saying so, retried at the next; a terminal keeps the last
      // good frame under it.
      last = good;
      if (!error.empty()) {
        last = {"leakscope top: process " + std::to_string(pid) + " " + error + "; retrying"};
        if (tty) last.insert(last.end(), good.begin(), good.end());
      }
      screen.draw(last);
      if (++drawn == frames) break;
      if (!wait_for(static_cast<int>(o.interval_s * 1000), screen, last)) break;
    }
  }
  if (!ended.empty()) {
    // On a terminal the alternate screen is gone: show the last frame where it stays.
    if (tty && drawn && frames != 1) Screen(false).draw(last);
    fprintf(stderr, "leakscope: process %ld %s\n", pid, ended.c_str());
    return drawn ? 0 : 1;
  }
  return 0;
}

}  // namespace leakscope::cli
