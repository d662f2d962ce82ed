// leakscope: the tracking options as the one table every use reads: `run` and `attach` make
// their command-line options from it (cli/track_options.h), `run` sets its environment
// variables and `attach` sends its "key=value" lines from it, the agent checks and applies
// the values it gets by it (agent/agent.cpp apply_option), and the exec hooks pass the values
// on to a new image by it (agent/hooks.cpp). Header only, no allocation: the agent includes it.
#pragma once
#include <cstddef>
#include <cstring>

namespace leakscope::options {

enum class Kind : unsigned char {
  kFlag,    // --name: "1" when given, else the default
  kNoFlag,  // --no-name: "0" when given, else the default ("1")
  kNumber,  // --name VALUE: a decimal number in [lo, hi]
  kChoice,  // --name VALUE: one of `choices` ("a|b")
  kText,    // set by leakscope itself (no option): any text
};

struct Option {
  const char* key;      // attach's "key=value" name, and apply_option's
  const char* env;      // run's variable (passed on at exec)
  Kind kind;
  const char* def;      // the default, as the text the agent parses
  double lo, hi;        // kNumber: the accepted range (values outside it are refused, or ignored by the agent)
  const char* choices;  // kChoice: '|'-separated
  const char* cli;      // the run/attach option, nullptr: set by leakscope itself
  bool run_only;        // an option of `run` only (attach sets it by other means)
  bool pass_on;         // the exec hooks give a new image the value this process has
  const char* help;
  bool whole = false;   // kNumber: a whole number
};

inline constexpr Option kTrackOptions[] = {
    {"native", "LEAKSCOPE_NATIVE", Kind::kFlag, "0", 0, 1, nullptr, "--native", false, true,
     "record native stacks too (always on for non-Python programs)"},
    {"retention", "LEAKSCOPE_RETENTION", Kind::kNoFlag, "1", 0, 1, nullptr, "--no-retention", false, false,
     "Python: do not walk the object graph when the run ends (no retention paths, no pause; docs/retention.md)"},
    {"interval", "LEAKSCOPE_INTERVAL", Kind::kNumber, "1", 0.01, 86400, nullptr, "--interval", false, true,
     "seconds between snapshots (flushes happen at least every second)"},
    {"sample_rate", "LEAKSCOPE_SAMPLE_RATE", Kind::kNumber, "0", 0, 1099511627776.0, nullptr, "--sample-rate", false,
     true, "sample allocations by bytes with this mean interval (e.g. 524288); 0 records every allocation", true},
    {"mode", "LEAKSCOPE_MODE", Kind::kChoice, "aggregate", 0, 0, "events|aggregate", "--mode", false, true,
     "events: every allocation and free (short runs); aggregate: per-site snapshots every --interval, a capture "
     "that grows with stacks and time, not with allocations"},
    {"full_resolution", "LEAKSCOPE_FULL_RESOLUTION", Kind::kNumber, "3600", 0.1, 1e8, nullptr, "--full-resolution",
     false, true,
     "aggregate mode: snapshots younger than this many seconds keep full resolution; older ones are thinned, twice "
     "as coarse each time their age doubles (default 3600)"},
    {"thin_at", "LEAKSCOPE_THIN_AT", Kind::kNumber, "8388608", 4096, 1125899906842624.0, nullptr, "--thin-at", false,
     true,
     "aggregate mode: thin the capture's older snapshots each time this many bytes (or half the file, if more) "
     "have been written since the last time (default 8388608)", true},
    {"follow_fork", "LEAKSCOPE_FOLLOW_FORK", Kind::kFlag, "0", 0, 1, nullptr, "--follow-fork", true, false,
     "track every process COMMAND forks too, each into CAPTURE-STEM.PID.lsc beside the capture "
     "(docs/process-trees.md; aggregate mode)"},
    {"max_processes", "LEAKSCOPE_MAX_PROCESSES", Kind::kNumber, "1000", 1, 1000000, nullptr, "--max-processes", true,
     false, "--follow-fork: at most this many captures in the tree; later children run untracked (default 1000)", true},
    {"zstd_level", "LEAKSCOPE_ZSTD_LEVEL", Kind::kNumber, "1", -7, 19, nullptr, nullptr, false, true, "", true},
    {"findleaks", "LEAKSCOPE_FINDLEAKS", Kind::kText, "", 0, 0, nullptr, nullptr, false, false, ""},
    {"tree_root", "LEAKSCOPE_TREE_ROOT", Kind::kText, "", 0, 0, nullptr, nullptr, false, false, ""},
    {"parent_capture", "LEAKSCOPE_PARENT_CAPTURE", Kind::kText, "", 0, 0, nullptr, nullptr, false, false, ""},
    {"parent_pid", "LEAKSCOPE_PARENT_PID", Kind::kText, "", 0, 0, nullptr, nullptr, false, false, ""},
};

inline const Option* find_option(const char* key) {
  for (const Option& o : kTrackOptions)
    if (std::strcmp(o.key, key) == 0) return &o;
  return nullptr;
}

// Whether `value` is acceptable for `o` (kNumber: a whole decimal or fixed-point number in
// range; kChoice: one of the choices; flags: "0" or "1"). No allocation, no locale.
inline bool valid_value(const Option& o, const char* value) {
  switch (o.kind) {
    case Kind::kFlag:
    case Kind::kNoFlag:
      return std::strcmp(value, "0") == 0 || std::strcmp(value, "1") == 0;
    case Kind::kChoice: {
      const size_t n = std::strlen(value);
      for (const char* c = o.choices; *c;) {
        const char* end = std::strchr(c, '|');
        const size_t len = end ? static_cast<size_t>(end - c) : std::strlen(c);
        if (len == n && std::strncmp(c, value, n) == 0) return true;
        if (!end) break;
        c = end + 1;
      }
      return false;
    }
    case Kind::kNumber: {
      const char* p = value;
      bool neg = *p == '-';
      if (neg) ++p;
      double v = 0, scale = 0;
      bool digits = false;
      for (; *p; ++p) {
        if (*p >= '0' && *p <= '9') {
          digits = true;
          if (scale == 0) v = v * 10 + (*p - '0');
          else v += (*p - '0') * scale, scale /= 10;
        } else if (*p == '.' && scale == 0) {
          scale = 0.1;
        } else {
          return false;
        }
      }
      if (neg) v = -v;
      if (o.whole && v != static_cast<double>(static_cast<long long>(v))) return false;
      return digits && v >= o.lo && v <= o.hi;
    }
    case Kind::kText:
      return true;
  }
  return false;
}

}  // namespace leakscope::options
