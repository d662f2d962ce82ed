// `export --format speedscope` (docs/exports.md, "speedscope"): speedscope's JSON file format
// (https://www.speedscope.app/file-format-schema.json), one sampled profile per value.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/profile.h"
#include "report/render.h"

namespace leakscope::report {

namespace {

// The profiles, in the order speedscope lists them (the first is shown on opening).
struct Value {
  const char* name;
  const char* unit;
  double ProfileSample::*field;
  bool allocated;  // an alloc_* value: a lower bound when the capture is aggregate
};
constexpr Value kValues[] = {
    {"inuse_space", "bytes", &ProfileSample::inuse_bytes, false},
    {"inuse_objects", "none", &ProfileSample::inuse_count, false},
    {"alloc_space", "bytes", &ProfileSample::alloc_bytes, true},
    {"alloc_objects", "none", &ProfileSample::alloc_count, true},
};

// speedscope's weights are plain numbers; whole ones, as in the collapsed export, so the two
// exports of one moment sum to the same totals.
int64_t weight(double v) {
  if (!(v > 0)) return 0;
  if (v >= 9.2e18) return INT64_MAX;
  return static_cast<int64_t>(std::llround(v));
}

// shared.frames, each distinct frame once. A layer (`python`, `malloc`...) is a frame of its
// own kind, so it never merges with a native function of the same name.
class FrameTable {
 public:
  size_t layer(const std::string& name) { return add({true, name, "", 0}); }
  size_t frame(const FrameOut& f) { return add({false, frame_label(f), f.file, f.line > 0 ? f.line : 0}); }
  nlohmann::json take() { return std::move(frames_); }

 private:
  using Key = std::tuple<bool, std::string, std::string, int>;  // layer?, name, file, line
  size_t add(Key key) {
    auto [it, fresh] = index_.emplace(std::move(key), frames_.size());
    if (fresh) {
      const auto& [is_layer, name, file, line] = it->first;
      nlohmann::json f = {{"name", name}};
      if (!file.empty()) f["file"] = file;
      if (line > 0) f["line"] = line;
      frames_.push_back(std::move(f));
    }
    return it->second;
  }
  std::map<Key, size_t> index_;
  nlohmann::json frames_ = nlohmann::json::array();
};

// What the profile is of, for the names speedscope shows: the command line, else the file.
std::string program(const Profile& p) {
  std::string s;
  for (const std::string& a : p.argv) s += (s.empty() ? "" : " ") + a;
  if (s.size() > 200) s = s.substr(0, 197) + "...";
  return s.empty() ? p.path : s;
}

std::string moment(const Profile& p) {
  if (p.at_end) return "";
  char buf[64];
  snprintf(buf, sizeof buf, " at %.3f s", p.at_s);
  return buf;
}

}  // namespace

std::string speedscope_document(const Profile& p, const RenderOptions&) {
  FrameTable frames;
  // Each site's stack once, root first: the layer, then the outermost frame down to the leaf.
  std::vector<std::vector<size_t>> stacks;
  stacks.reserve(p.samples.size());
  for (const ProfileSample& s : p.samples) {
    std::vector<size_t> st{frames.layer(s.layer)};
    for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) st.push_back(frames.frame(*it));
    stacks.push_back(std::move(st));
  }
  const std::string prog = program(p) + moment(p);
  nlohmann::json profiles = nlohmann::json::array();
  for (const Value& v : kValues) {
    // Heaviest first, so speedscope's time-ordered view reads left to right by size.
    std::vector<size_t> order(p.samples.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return p.samples[a].*v.field > p.samples[b].*v.field; });
    nlohmann::json samples = nlohmann::json::array(), weights = nlohmann::json::array();
    int64_t total = 0;
    for (size_t i : order) {
      const int64_t w = weight(p.samples[i].*v.field);
      if (!w) continue;
      samples.push_back(stacks[i]);
      weights.push_back(w);
      total += w;
    }
    std::string name = std::string(v.name) + ": " + prog;
    if (v.allocated && !p.alloc_exact) name += " (lower bound: aggregate capture)";
    if (p.sample_rate) name += " (estimates: sampled)";
    profiles.push_back({{"type", "sampled"},
                        {"name", name},
                        {"unit", v.unit},
                        {"startValue", 0},
                        {"endValue", total},
                        {"samples", std::move(samples)},
                        {"weights", std::move(weights)}});
  }
  nlohmann::json doc = {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
                        {"exporter", "leakscope"},
                        {"name", "leakscope: " + prog},
                        {"activeProfileIndex", 0},
                        {"shared", {{"frames", frames.take()}}},
                        {"profiles", std::move(profiles)}};
  // Names come from the program (file and function names): bytes that are not UTF-8 become
  // U+FFFD instead of failing the export.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace leakscope::report
