// See push.h. The HTTP client is cpp-httplib's, as for --serve.
#include "cli/push.h"

#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <new>
#include <thread>

#include "capture/reader.h"
#include "cli/control_client.h"
#include "cli/serve.h"
#include "report/profile.h"
#include "report/render.h"

namespace leakscope::cli {

struct Pusher::Impl {
  std::string origin, path, capture, name;
  double interval_s = 15;
  long pid = 0;
  std::thread thread;
  std::mutex m;
  std::condition_variable cv;
  bool stopping = false;
  bool warned = false;
  uint64_t last_unix = 0;

  // One flush-build-POST. Failures are said once on stderr: the program runs on regardless.
  void push_once(bool final_push) {
    std::string reply;
    if (!final_push && !(control_request(pid, "flush\n", 10000, &reply) && reply.rfind("ok ", 0) == 0)) return;
    std::string body;
    try {
      std::lock_guard<std::mutex> g(report_lock());
      report::Profile p = report::build_profile(capture, std::nullopt, {}, &companion_symbols());
      report::RenderOptions opt{SIZE_MAX, false, "inuse_space"};
      body = report::find_renderer("pprof", report::Document::kProfile)->profile(p, opt);
    } catch (const capture::CaptureError&) {
      return;  // nothing complete to read yet
    } catch (const std::bad_alloc&) {
      return;
    }
    const uint64_t now = static_cast<uint64_t>(time(nullptr));
    const uint64_t from = last_unix ? last_unix : now;
    last_unix = now;
    httplib::Client cli(origin);
    cli.set_connection_timeout(5, 0);
    cli.set_read_timeout(10, 0);
    cli.set_write_timeout(10, 0);
    const std::string target = path + "/ingest?name=" + httplib::detail::encode_query_param(name) +
                               "&from=" + std::to_string(from) + "&until=" + std::to_string(now) +
                               "&format=pprof&spyName=leakscope";
    httplib::MultipartFormDataItems items = {{"profile", body, "profile.pprof", "application/octet-stream"}};
    auto res = cli.Post(target, items);
    if ((!res || res->status >= 300) && !warned) {
      warned = true;
      fprintf(stderr, "leakscope: --push %s%s: %s (will keep trying)\n", origin.c_str(), path.c_str(),
              res ? ("HTTP " + std::to_string(res->status)).c_str() : httplib::to_string(res.error()).c_str());
    }
  }

  void loop() {
    std::unique_lock<std::mutex> lk(m);
    while (!stopping) {
      cv.wait_for(lk, std::chrono::duration<double>(interval_s), [this] { return stopping; });
      const bool final_push = stopping;
      lk.unlock();
      push_once(final_push);
      lk.lock();
    }
  }
};

Pusher::Pusher() : impl_(std::make_unique<Impl>()) {}
Pusher::~Pusher() { stop(); }

bool Pusher::prepare(const std::string& url, double interval_s, const std::string& capture_path,
                     const std::string& app_name) {
  const std::string scheme = "http://";
  const size_t slash = url.find('/', scheme.size());
  const std::string host = url.substr(scheme.size(), slash == std::string::npos ? std::string::npos : slash - scheme.size());
  if (url.rfind(scheme, 0) != 0 || host.empty() || host.find_first_of("?#@ ") != std::string::npos) {
    fprintf(stderr, "leakscope: --push %s: expected http://HOST:PORT[/PREFIX] (Pyroscope's address)\n", url.c_str());
    return false;
  }
  Impl& m = *impl_;
  m.origin = scheme + host;
  m.path = slash == std::string::npos ? "" : url.substr(slash);
  while (!m.path.empty() && m.path.back() == '/') m.path.pop_back();
  m.interval_s = interval_s;
  m.capture = capture_path;
  m.name = app_name;
  return true;
}

void Pusher::start(long pid) {
  impl_->pid = pid;
  signal(SIGPIPE, SIG_IGN);  // a collector that hangs up must not kill the companion (after fork)
  impl_->thread = std::thread([this] { impl_->loop(); });
}

void Pusher::stop() {
  if (!impl_->thread.joinable()) return;
  {
    std::lock_guard<std::mutex> g(impl_->m);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

}  // namespace leakscope::cli
