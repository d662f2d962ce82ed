// The reading progress line: see progress.h.
#include "cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace leakscope::cli {

namespace {

constexpr auto kRedrawEvery = std::chrono::milliseconds(100);

// LEAKSCOPE_PROGRESS_AFTER: seconds before the line may appear. Anything unreadable, negative
// or absurd falls back to the default: the knob only changes what a terminal shows.
std::chrono::steady_clock::duration delay_from_env() {
  double s = 0.5;
  if (const char* e = getenv("LEAKSCOPE_PROGRESS_AFTER")) {
    char* end = nullptr;
    double v = strtod(e, &end);
    if (end != e && *end == 0 && std::isfinite(v) && v >= 0 && v <= 3600) s = v;
  }
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

// Whole MiB, with a tenth below 10 MiB so a small file does not read "0 MiB of 0 MiB".
std::string mib(uint64_t bytes) {
  const double m = static_cast<double>(bytes) / (1024.0 * 1024.0);
  char buf[32];
  snprintf(buf, sizeof buf, m < 10 ? "%.1f MiB" : "%.0f MiB", m);
  return buf;
}

}  // namespace

ReadingProgress::ReadingProgress() : tty_(isatty(STDERR_FILENO) == 1) {
  if (!tty_) return;
  after_ = delay_from_env();
  start_ = Clock::now();
}

capture::ReadProgress ReadingProgress::callback() {
  if (!tty_) return {};
  return [this](const std::string& name, uint64_t done, uint64_t size) { update(name, done, size); };
}

void ReadingProgress::update(const std::string& name, uint64_t done, uint64_t size) {
  const Clock::time_point now = Clock::now();
  if (now - start_ < after_ || (drawn_ && now - last_draw_ < kRedrawEvery)) return;
  last_draw_ = now;
  const unsigned pct = size ? static_cast<unsigned>(std::min<uint64_t>(100, done * 100 / size)) : 100;
  std::string line = "leakscope: reading " + name + " " + std::to_string(pct) + "% (" + mib(done) + " of " +
                     mib(size) + ")";
  // Pad over the previous line's tail when this one is shorter (a second file's name).
  const size_t len = line.size();
  if (len < drawn_) line.append(drawn_ - len, ' ');
  fprintf(stderr, "\r%s", line.c_str());
  fflush(stderr);
  drawn_ = len > drawn_ ? len : drawn_;
}

void ReadingProgress::clear() {
  if (!drawn_) return;
  fprintf(stderr, "\r%*s\r", static_cast<int>(drawn_), "");
  fflush(stderr);
  drawn_ = 0;
}

}  // namespace leakscope::cli
