// See serve.h and docs/serve.md. cpp-httplib (Debian libcpp-httplib-dev) parses HTTP; this
// file adds what it does not do: the bearer token, the loopback rule, bounds on connections
// and on concurrent slow requests, and the mapping of endpoints onto the report layer.
#include "cli/serve.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <httplib.h>
#include <signal.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

#include "capture/reader.h"
#include "cli/control_client.h"
#include "cli/push.h"
#include "report/diff.h"
#include "report/metrics.h"
#include "report/profile.h"
#include "report/render.h"
#include "report/sites.h"

namespace leakscope::cli {

namespace {

constexpr size_t kWorkers = 4;          // requests served at once
constexpr rlim_t kMaxFds = 256;         // bounds open connections (accept fails beyond)
constexpr size_t kMaxHeaders = 64;      // more: 431
constexpr int kDeltaMin = 1, kDeltaMax = 300, kDeltaDefault = 30;
constexpr int kFlushTimeoutMs = 10000;

// "127.0.0.1:9000", "[::1]:9000", "localhost:9000" -> host, port, whether loopback.
bool parse_address(const std::string& a, std::string* host, int* port, bool* loopback, std::string* why) {
  size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon + 1 == a.size()) {
    *why = "expected ADDR:PORT, e.g. 127.0.0.1:9464";
    return false;
  }
  std::string h = a.substr(0, colon), p = a.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost") h = "127.0.0.1";
  char* end = nullptr;
  long v = strtol(p.c_str(), &end, 10);
  if (p.empty() || *end || v < 0 || v > 65535) {
    *why = "bad port '" + p + "' (0..65535; 0: any free port)";
    return false;
  }
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    *loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    *loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  } else {
    *why = "'" + h + "' is not a numeric IPv4 or IPv6 address (or localhost)";
    return false;
  }
  *host = h;
  *port = static_cast<int>(v);
  return true;
}

std::string trim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// Reads an existing token file (private to its owner) or creates one (O_EXCL, 0600) holding a
// fresh random token. "" and *why on failure.
std::string load_token(const std::string& path, bool* created, std::string* why) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
      *why = std::string("getrandom: ") + strerror(errno);
      return "";
    }
    std::string token;
    char hex[3];
    for (unsigned char c : raw) {
      snprintf(hex, sizeof hex, "%02x", c);
      token += hex;
    }
    int w = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w < 0) {
      *why = "cannot create the token file " + path + ": " + strerror(errno);
      return "";
    }
    std::string line = token + "\n";
    bool ok = write(w, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ok &= close(w) == 0;
    if (!ok) {
      unlink(path.c_str());
      *why = "cannot write the token file " + path;
      return "";
    }
    *created = true;
    return token;
  }
  if (fd < 0) {
    *why = "cannot open the token file " + path + ": " + strerror(errno);
    return "";
  }
  struct stat st {};
  char buf[4097];
  ssize_t n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof buf) : -1;
  close(fd);
  if (n < 0 || !S_ISREG(st.st_mode)) {
    *why = "the token file " + path + " is not a readable regular file";
  } else if (st.st_mode & 077) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    *why = "the token file " + path + " is open to others (mode " + mode + "); chmod 600 it";
  } else if (st.st_uid != geteuid()) {
    *why = "the token file " + path + " belongs to another user";
  } else if (n == static_cast<ssize_t>(sizeof buf)) {
    *why = "the token file " + path + " is longer than 4096 bytes";
  } else {
    std::string token = trim(std::string(buf, static_cast<size_t>(n)));
    bool printable = true;
    for (char c : token) printable &= c > ' ' && c < 127;
    if (token.size() >= 16 && printable) return token;
    *why = "the token in " + path + " must be at least 16 printable characters without spaces";
  }
  return "";
}

// Constant time in the token's content: every byte is looked at whatever differs.
bool same_token(const std::string& given, const std::string& token) {
  if (given.size() != token.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ token[i]);
  return diff == 0;
}

// The listening socket bound to `port` on this process: close-on-exec, so the program `run`
// starts does not inherit it (cpp-httplib does not say which descriptor it is).
void cloexec_listener(int port) {
  for (int fd = 3; fd < 1024; ++fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) continue;
    int p = ss.ss_family == AF_INET    ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
            : ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : -1;
    if (p == port) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  }
}

}  // namespace

struct Endpoints::Impl {
  httplib::Server server;
  std::thread thread;
  std::string token, capture, token_path;
  bool token_created = false;
  long pid = 0;
  std::atomic<bool> delta_busy{false};
  std::atomic<bool> stopping{false};  // ends a delta_heap wait early

  // Asks the agent to write a snapshot now. False: the process is gone or does not answer.
  bool flush() {
    std::string reply;
    return control_request(pid, "flush\n", kFlushTimeoutMs, &reply) && reply.rfind("ok ", 0) == 0;
  }

  // Runs `fn` under the build lock, mapping the report layer's errors onto 503.
  template <typename Fn>
  void guarded(httplib::Response& res, Fn fn) {
    try {
      std::lock_guard<std::mutex> g(report_lock());
      fn();
    } catch (const capture::CaptureError& e) {
      res.status = 503;
      res.set_content(std::string("leakscope: cannot read the capture: ") + e.what() + "\n", "text/plain");
    } catch (const report::DiffError& e) {
      res.status = 503;
      res.set_content(std::string("leakscope: ") + e.what() + "\n", "text/plain");
    } catch (const std::bad_alloc&) {
      res.status = 503;
      res.set_content("leakscope: out of memory reading the capture\n", "text/plain");
    }
  }

  bool flushed(httplib::Response& res) {
    if (flush()) return true;
    res.status = 503;
    res.set_content("leakscope: process " + std::to_string(pid) + " did not write a snapshot (exited?)\n", "text/plain");
    return false;
  }

  void profile(const httplib::Request& req, httplib::Response& res, const char* sample_type) {
    if (!flushed(res)) return;
    const bool text = req.has_param("debug") && req.get_param_value("debug") != "0";
    guarded(res, [&] {
      report::Profile p = report::build_profile(capture, std::nullopt, {}, &companion_symbols());
      const auto* f = report::find_renderer(text ? "collapsed" : "pprof", report::Document::kProfile);
      report::RenderOptions opt{SIZE_MAX, false, sample_type};
      res.set_content(f->profile(p, opt), text ? "text/plain; charset=utf-8" : "application/octet-stream");
    });
  }

  void delta(const httplib::Request& req, httplib::Response& res) {
    int seconds = kDeltaDefault;
    if (req.has_param("seconds")) {
      const std::string v = req.get_param_value("seconds");
      char* end = nullptr;
      long s = strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || s < kDeltaMin || s > kDeltaMax) {
        res.status = 400;
        res.set_content("leakscope: seconds must be a whole number from 1 to 300\n", "text/plain");
        return;
      }
      seconds = static_cast<int>(s);
    }
    if (delta_busy.exchange(true)) {  // one waiting request at a time: the others stay free
      res.status = 429;
      res.set_content("leakscope: a delta_heap request is already running\n", "text/plain");
      return;
    }
    struct Release {
      std::atomic<bool>& b;
      ~Release() { b = false; }
    } release{delta_busy};
    if (!flushed(res)) return;
    double t0 = 0;
    guarded(res, [&] { t0 = report::build_profile(capture, std::nullopt, {}, &companion_symbols()).at_s; });
    if (res.status >= 400) return;
    for (int i = 0; i < seconds * 10 && !stopping; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (stopping) {
      res.status = 503;
      res.set_content("leakscope: stopped serving (the process exited)\n", "text/plain");
      return;
    }
    if (!flushed(res)) return;
    guarded(res, [&] {
      char at[64];
      snprintf(at, sizeof at, "@%.6f", t0 + 1e-6);  // the snapshot at t0, not the one before
      report::Diff d = report::build_diff(capture + at, capture);
      const auto* f = report::find_renderer("pprof", report::Document::kDiff);
      res.set_content(f->diff(d, report::RenderOptions{SIZE_MAX, false}), "application/octet-stream");
    });
  }

  void metrics(httplib::Response& res) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!flushed(res)) return;
    guarded(res, [&] {
      report::BuildOptions bo;
      bo.symbols = &companion_symbols();
      bo.max_stacks = 0;  // the layers' totals only
      report::Report r = report::build_report(capture, bo);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      res.set_content(report::prometheus_text(r, s), "text/plain; version=0.0.4; charset=utf-8");
    });
  }

  httplib::Server::HandlerResponse check(const httplib::Request& req, httplib::Response& res) {
    if (req.headers.size() > kMaxHeaders) {
      res.status = 431;
      res.set_content("leakscope: too many header fields\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string auth = req.get_header_value("Authorization");
    const std::string scheme = "Bearer ";
    if (auth.size() > scheme.size() && strncasecmp(auth.c_str(), scheme.c_str(), scheme.size()) == 0 &&
        same_token(auth.substr(scheme.size()), token))
      return httplib::Server::HandlerResponse::Unhandled;
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"leakscope\"");
    res.set_content("leakscope: a bearer token is needed (docs/serve.md)\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  }
};

std::mutex& report_lock() {
  static std::mutex m;
  return m;
}

report::SymbolCache& companion_symbols() {
  static report::SymbolCache c;
  return c;
}

void add_serve_options(CLI::App* cmd, ServeOptions& s) {
  cmd->add_option("--serve", s.address,
                  "serve /metrics and /debug/pprof/{heap,allocs,delta_heap} on ADDR:PORT (loopback; port 0: any) "
                  "while the program runs (docs/serve.md)");
  cmd->add_option("--token-file", s.token_file,
                  "the bearer token --serve requires: read from FILE (mode 0600), or created there when absent "
                  "(default: CAPTURE.token, removed at the end)");
  cmd->add_flag("--serve-anywhere", s.anywhere, "allow --serve on a non-loopback address");
  cmd->add_option("--push", s.push,
                  "every --push-interval seconds, POST live memory as pprof to Pyroscope's ingest API at this "
                  "http://HOST:PORT (docs/serve.md)");
  cmd->add_option("--push-interval", s.push_interval_s, "seconds between --push uploads (default 15)")
      ->check(CLI::Range(1.0, 86400.0));
}

Endpoints::Endpoints() : impl_(std::make_unique<Impl>()) {}
Endpoints::~Endpoints() {
  stop();
  if (impl_->token_created && !impl_->token_path.empty()) unlink(impl_->token_path.c_str());
}

bool Endpoints::prepare(const ServeOptions& o, const std::string& capture_path, bool quiet) {
  std::string host, why;
  int port = 0;
  bool loopback = false;
  if (!parse_address(o.address, &host, &port, &loopback, &why)) {
    fprintf(stderr, "leakscope: --serve %s: %s\n", o.address.c_str(), why.c_str());
    return false;
  }
  if (!loopback && !o.anywhere) {
    fprintf(stderr, "leakscope: --serve %s is not a loopback address; add --serve-anywhere to serve the network\n",
            o.address.c_str());
    return false;
  }
  Impl& m = *impl_;
  m.capture = capture_path;
  m.token_path = o.token_file.empty() ? capture_path + ".token" : o.token_file;
  m.token = load_token(m.token_path, &m.token_created, &why);
  if (m.token.empty()) {
    fprintf(stderr, "leakscope: %s\n", why.c_str());
    return false;
  }
  if (!o.token_file.empty()) m.token_created = false;  // the user's file: kept
  httplib::Server& s = m.server;
  s.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
  s.set_read_timeout(5, 0);
  s.set_write_timeout(10, 0);
  s.set_keep_alive_max_count(20);
  s.set_keep_alive_timeout(5);
  s.set_payload_max_length(4096);  // every endpoint is a GET
  s.set_pre_routing_handler([&m](const httplib::Request& req, httplib::Response& res) { return m.check(req, res); });
  s.Get("/debug/pprof/heap", [&m](const httplib::Request& q, httplib::Response& r) { m.profile(q, r, "inuse_space"); });
  s.Get("/debug/pprof/allocs", [&m](const httplib::Request& q, httplib::Response& r) { m.profile(q, r, "alloc_space"); });
  s.Get("/debug/pprof/delta_heap", [&m](const httplib::Request& q, httplib::Response& r) { m.delta(q, r); });
  s.Get("/metrics", [&m](const httplib::Request&, httplib::Response& r) { m.metrics(r); });
  int bound = port ? (s.bind_to_port(host.c_str(), port) ? port : -1) : s.bind_to_any_port(host.c_str());
  if (bound <= 0) {
    fprintf(stderr, "leakscope: --serve %s: cannot listen there (%s)\n", o.address.c_str(), strerror(errno));
    return false;
  }
  cloexec_listener(bound);
  if (!quiet) {
    const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    fprintf(stderr, "leakscope: serving http://%s:%d/metrics and /debug/pprof/heap; token in %s\n", shown.c_str(),
            bound, m.token_path.c_str());
  }
  return true;
}

void Endpoints::start(long pid) {
  impl_->pid = pid;
  // A client that hangs up mid-answer must not kill the companion (and, for run, lose the
  // program's exit status). cpp-httplib ignores SIGPIPE too, but that is its detail; this is ours.
  // Called after fork: the program keeps its own SIGPIPE disposition.
  signal(SIGPIPE, SIG_IGN);
  // Each connection holds a descriptor: a low limit bounds them (the program keeps its own).
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > kMaxFds) {
    rl.rlim_cur = kMaxFds;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
}

bool prepare_companions(const ServeOptions& o, const std::string& capture_path, const std::string& program, bool quiet,
                        std::unique_ptr<Endpoints>* endpoints, std::unique_ptr<Pusher>* pusher) {
  if (!o.address.empty()) {
    *endpoints = std::make_unique<Endpoints>();
    if (!(*endpoints)->prepare(o, capture_path, quiet)) {
      endpoints->reset();
      return false;
    }
  }
  if (!o.push.empty()) {
    *pusher = std::make_unique<Pusher>();
    const std::string base = program.substr(program.rfind('/') == std::string::npos ? 0 : program.rfind('/') + 1);
    if (!(*pusher)->prepare(o.push, o.push_interval_s, capture_path, "leakscope." + base + ".memory")) {
      pusher->reset();
      endpoints->reset();
      return false;
    }
  }
  return true;
}

bool companions_until_exit(Endpoints* endpoints, Pusher* pusher, long pid, double duration_s) {
  sigset_t stop_signals, old;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_signals, &old);  // before the companions' threads exist: they inherit it
  if (endpoints) endpoints->start(pid);
  if (pusher) pusher->start(pid);
  const auto t0 = std::chrono::steady_clock::now();
  const timespec tick{0, 200 * 1000 * 1000};
  int sig = -1;
  while (process_exists(pid) && sig < 0) {
    if (duration_s > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= duration_s)
      break;
    sig = sigtimedwait(&stop_signals, nullptr, &tick);
  }
  if (endpoints) endpoints->stop();
  if (pusher) pusher->stop();
  sigprocmask(SIG_SETMASK, &old, nullptr);
  return process_exists(pid);
}

void Endpoints::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace leakscope::cli
