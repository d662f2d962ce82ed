// `leakscope top PID`: a live view of a tracked process, redrawn every interval from the
// capture a "flush" request refreshes (docs/top.md).
#pragma once
#include <string>

namespace CLI {
class App;
}

namespace leakscope::cli {

struct TopOptions {
  std::string pid;
  double interval_s = 2.0;
  bool once = false;
  unsigned frames = 0;  // stop after this many frames; 0: until q, Ctrl-C or the process ends
};

// Adds the `top` subcommand to `app`, its values going to `o`.
CLI::App* add_top_command(CLI::App& app, TopOptions& o);
int cmd_top(const TopOptions& o);

}  // namespace leakscope::cli
