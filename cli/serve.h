// `leakscope run|attach --serve ADDR:PORT` (docs/serve.md): HTTP endpoints served by the
// leakscope CLI itself (the companion process), never by the tracked program. Each request asks
// the agent for a flush over the control socket, then reads the capture and renders it.
#pragma once
#include <memory>
#include <mutex>
#include <string>

namespace CLI {
class App;
}

namespace leakscope::report {
class SymbolCache;
}

namespace leakscope::cli {

// Held while building from a capture: the report layer is not thread-safe (serve and push).
std::mutex& report_lock();
// The companion's native symbols, kept between requests and pushes; use under report_lock().
report::SymbolCache& companion_symbols();

struct ServeOptions {
  std::string address;     // ADDR:PORT or [V6ADDR]:PORT; empty: no server
  std::string push;        // --push URL (cli/push.h); empty: none
  double push_interval_s = 15;
  std::string token_file;  // empty: CAPTURE.token, created and removed by leakscope
  bool anywhere = false;   // --serve-anywhere: allow a non-loopback address
};

// --serve, --token-file and --serve-anywhere, the same for run and attach.
void add_serve_options(CLI::App* cmd, ServeOptions& s);

class Endpoints {
 public:
  Endpoints();
  ~Endpoints();  // stops serving; removes a token file it created by default
  // Checks the address, loads or creates the token and binds (the listening socket is
  // close-on-exec, so call it before fork). False: one line on stderr said why.
  bool prepare(const ServeOptions& o, const std::string& capture_path, bool quiet);
  // Serves requests about process `pid` (whose capture is `capture_path`) on a thread.
  void start(long pid);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Pusher;  // cli/push.h

// run and attach: the --serve endpoints and the --push uploader `o` asks for (each left null
// when not), prepared before fork. `program` names the Pyroscope application. False: one line
// on stderr said why.
bool prepare_companions(const ServeOptions& o, const std::string& capture_path, const std::string& program, bool quiet,
                        std::unique_ptr<Endpoints>* endpoints, std::unique_ptr<Pusher>* pusher);

// attach --serve/--push: starts them (either may be null) about `pid`, then waits until the
// process exits, `duration_s` (0: none) passes, or SIGINT/SIGTERM arrives; stops them (the
// pusher after one last push). True when the process still runs (the caller detaches).
bool companions_until_exit(Endpoints* endpoints, Pusher* pusher, long pid, double duration_s);

}  // namespace leakscope::cli
