// A progress line for reading big captures (`report`, `diff`, `export`): on stderr, and only
// when stderr is a terminal, never in a pipe or a file. It appears once reading has taken
// longer than LEAKSCOPE_PROGRESS_AFTER seconds (default 0.5; the tests set 0), is redrawn in
// place at most 10 times a second, and is erased before anything else is written.
// The library only reports bytes (capture::ReadProgress); the terminal is the CLI's.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "capture/reader.h"

namespace leakscope::cli {

class ReadingProgress {
 public:
  ReadingProgress();  // decides once whether stderr is a terminal
  ~ReadingProgress() { clear(); }
  ReadingProgress(const ReadingProgress&) = delete;
  ReadingProgress& operator=(const ReadingProgress&) = delete;

  // For build_report, build_diff and build_profile: null when stderr is not a terminal, so
  // the reader makes no calls at all.
  capture::ReadProgress callback();
  // Erases the line if one is drawn (call before writing the document).
  void clear();

 private:
  using Clock = std::chrono::steady_clock;
  void update(const std::string& name, uint64_t done, uint64_t size);
  bool tty_ = false;
  Clock::duration after_{};
  Clock::time_point start_{}, last_draw_{};
  size_t drawn_ = 0;  // characters of the line on screen; 0: none
};

// Runs `build(progress callback)` (build_report, build_diff, build_profile) with the line shown
// meanwhile; it is erased when this returns, before the caller writes its document.
template <class Build>
auto with_progress(Build build) {
  ReadingProgress progress;
  return build(progress.callback());
}

}  // namespace leakscope::cli
