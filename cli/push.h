// `leakscope run --push URL` (docs/serve.md, "Push"): every --push-interval seconds the
// companion flushes, builds the live-memory profile and POSTs it as pprof to Pyroscope's ingest
// API (URL/ingest?name=...&from=...&until=...&format=pprof, multipart field "profile").
#pragma once
#include <memory>
#include <string>

namespace leakscope::cli {

class Pusher {
 public:
  Pusher();
  ~Pusher();  // stop()
  // Checks URL (http://HOST:PORT[/PREFIX]). False: one line on stderr said why.
  bool prepare(const std::string& url, double interval_s, const std::string& capture_path, const std::string& app_name);
  void start(long pid);
  // Ends the loop after one last push (the state when the program ended).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace leakscope::cli
