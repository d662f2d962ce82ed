// The tracking options `run` and `attach` share (and `run`'s --follow-fork), made from
// agent/option_list.h's table, and how they reach the agent: environment variables for `run`,
// "key=value" lines for `attach` (agent/agent.cpp apply_option reads both, by the same table).
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/option_list.h"

struct TrackOptions {
  // The text of every option of kTrackOptions (its default until given), in table order.
  std::vector<std::string> values;

  TrackOptions() {
    for (const auto& o : leakscope::options::kTrackOptions) values.emplace_back(o.def);
  }
  const std::string& get(const char* key) const { return values[index(key)]; }
  void set(const char* key, std::string v) { values[index(key)] = std::move(v); }
  bool flag(const char* key) const { return get(key) == "1"; }
  double number(const char* key) const { return strtod(get(key).c_str(), nullptr); }

  struct KeyValue {
    const char* key;
    const char* env;
    std::string value;
  };
  // What the agent is given: every option a user can set (the ones leakscope sets itself, such
  // as findleaks, are added by `run` and `attach` where they know them).
  std::vector<KeyValue> pairs() const {
    std::vector<KeyValue> out;
    size_t i = 0;
    for (const auto& o : leakscope::options::kTrackOptions) {
      if (o.cli) out.push_back({o.key, o.env, values[i]});
      ++i;
    }
    return out;
  }
  // The options of `run` (run_only ones too) or of `attach`.
  void add_to(CLI::App* cmd, bool run) {
    using leakscope::options::Kind;
    size_t i = 0;
    for (const auto& o : leakscope::options::kTrackOptions) {
      std::string& v = values[i++];
      if (!o.cli || (o.run_only && !run)) continue;
      switch (o.kind) {
        case Kind::kFlag:
        case Kind::kNoFlag: {
          const char* given = o.kind == Kind::kFlag ? "1" : "0";
          cmd->add_flag_callback(o.cli, [&v, given] { v = given; }, o.help);
          break;
        }
        case Kind::kNumber: {
          auto* opt = cmd->add_option_function<double>(o.cli, [&v](double x) { v = canonical(x); }, o.help)
                          ->check(CLI::Range(o.lo, o.hi))
                          ->type_name(o.whole ? "UINT" : "FLOAT");
          if (o.whole)
            opt->check(CLI::Validator(
                [](std::string& s) {
                  const double x = strtod(s.c_str(), nullptr);
                  return x == std::floor(x) ? std::string() : std::string("a whole number is needed");
                },
                "WHOLE"));
          break;
        }
        case Kind::kChoice: {
          std::vector<std::string> choices;
          for (const char *c = o.choices, *end; c; c = end ? end + 1 : nullptr) {
            end = strchr(c, '|');
            choices.emplace_back(c, end ? static_cast<size_t>(end - c) : strlen(c));
          }
          cmd->add_option(o.cli, v, o.help)->check(CLI::IsMember(choices));
          break;
        }
        case Kind::kText:
          break;
      }
    }
  }

 private:
  static size_t index(const char* key) {
    const auto* o = leakscope::options::find_option(key);
    if (!o) abort();  // a key of the table, always (the code names them)
    return static_cast<size_t>(o - leakscope::options::kTrackOptions);
  }
  // A number as the agent's parser reads it (option_list.h valid_value: no exponent).
  static std::string canonical(double x) {
    char buf[64];
    if (x == std::floor(x) && std::fabs(x) < 9e15) snprintf(buf, sizeof buf, "%.0f", x);
    else snprintf(buf, sizeof buf, "%.6f", x);
    return buf;
  }
};
