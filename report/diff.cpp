// `leakscope diff`: see diff.h and docs/diff.md.
#include "report/diff.h"
#include "report/tree.h"

#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "analysis/replay.h"
#include "capture/reader.h"
#include "report/sites.h"
#include "report/stack_view.h"
#include "report/words.h"

namespace leakscope::report {

namespace {

constexpr double kEndSlackS = 0.01;  // `@` may pass the end by this much (rounded display)

bool is_file(const std::string& p) {
  struct stat st {};
  return !p.empty() && stat(p.c_str(), &st) == 0;
}

// "10", "2.5", ".5", "10s": seconds, non-negative, finite.
bool parse_seconds(std::string s, double* out) {
  if (!s.empty() && s.back() == 's') s.pop_back();
  if (s.empty() || s.size() > 32) return false;
  int dots = 0, digits = 0;
  for (char c : s) {
    if (c == '.') ++dots;
    else if (c >= '0' && c <= '9') ++digits;
    else return false;
  }
  if (dots > 1 || digits == 0) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (!end || *end != 0 || !std::isfinite(v) || v < 0 || v > 1e9) return false;
  *out = v;
  return true;
}

std::string seconds_text(double s) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

std::string signed_bytes(int64_t v) {
  if (v == 0) return "0 B";
  uint64_t mag = v < 0 ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
  return (v < 0 ? "-" : "+") + format_bytes(mag);
}

std::string signed_count(int64_t v) {
  if (v == 0) return "0";
  uint64_t mag = v < 0 ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
  return (v < 0 ? "-" : "+") + with_commas(mag);
}

int64_t rounded(double v) {
  if (!(v > 0)) return 0;  // negatives are rounding noise of estimates; NaN never reaches here
  if (v >= 9.2e18) return INT64_MAX;
  return static_cast<int64_t>(std::llround(v));
}

// One capture, read once even when both sides name it.
struct Loaded {
  std::string path;
  analysis::Replay rp;
  bool truncated = false;
  std::optional<std::string> python_version;
  std::unique_ptr<Symbolizer> sym;
};

std::unique_ptr<Loaded> load(const std::string& path, const capture::ReadProgress& progress) {
  capture::Reader reader(path);
  reader.set_progress(progress);
  auto l = std::make_unique<Loaded>();
  l->path = path;
  l->rp.set_aggregate((reader.header().flags & capture::kFlagAggregate) != 0);
  reader.read_all(l->rp);
  l->rp.finish();
  l->truncated = reader.truncated();
  if (auto it = l->rp.info().find("python_version"); it != l->rp.info().end()) l->python_version = it->second;
  l->sym = std::make_unique<Symbolizer>(l->rp);
  return l;
}

// Resolves a side to a state of its capture: the sites live then, and the process point.
std::vector<analysis::Replay::SiteTotal> resolve(const Loaded& l, const std::string& spec_text, const DiffSpec& spec,
                                                 DiffSide* side) {
  const auto& rp = l.rp;
  const auto& times = rp.snapshot_times();
  const auto& proc = rp.process_series();
  side->spec = spec_text;
  side->path = spec.path;
  side->requested_s = spec.at_s;
  side->duration_s = std::max(static_cast<double>(rp.last_ns()) / 1e9, times.empty() ? 0.0 : times.back());
  side->complete = rp.stopped() && !l.truncated;
  side->sample_rate = rp.sample_rate();
  side->python_version = l.python_version;
  auto at_end = [&] {
    side->end = true;
    side->at_s = side->duration_s;
    auto totals = rp.site_totals();
    if (!proc.empty()) {
      // The last snapshot can precede the final chunk's events (its STOP is read first):
      // take the tracked layers from the end state itself, the rest from the last STATS.
      side->have_memory = true;
      analysis::ProcessPoint& m = side->memory;
      m = proc.back();
      m.t_s = side->at_s;
      m.python = m.mmap = 0;
      for (const auto& st : totals) {
        if (st.layer == static_cast<uint8_t>(analysis::Layer::kPython)) m.python += st.bytes;
        if (st.layer == static_cast<uint8_t>(analysis::Layer::kMmap)) m.mmap += st.bytes;
      }
      m.live = static_cast<double>(rp.live_bytes());
      if (rp.have_stats()) {
        const auto& s = rp.stats();
        m.rss = static_cast<double>(s.rss);
        m.rss_anon = static_cast<double>(s.rss_anon);
        m.rss_file = static_cast<double>(s.rss_file);
        m.glibc_in_use = static_cast<double>(s.glibc_in_use);
        m.glibc_free = static_cast<double>(s.glibc_free);
        m.arena = std::max(m.arena, static_cast<double>(s.arena_bytes));
      }
      m.pymalloc_free = m.arena > m.python ? m.arena - m.python : 0;
    }
    return totals;
  };
  if (!spec.at_s) return at_end();
  double t = *spec.at_s;
  if (t > side->duration_s + kEndSlackS)
    throw DiffError(spec_text + ": " + seconds_text(t) + " is beyond the end of the capture (" +
                    seconds_text(side->duration_s) + ")");
  if (times.empty()) return at_end();
  auto it = std::upper_bound(times.begin(), times.end(), t + 1e-9);
  if (it == times.begin()) {  // before the first snapshot: tracking had just begun
    side->start = true;
    side->at_s = 0;
    return {};
  }
  size_t idx = static_cast<size_t>(it - times.begin()) - 1;
  if (idx + 1 == times.size()) return at_end();
  side->at_s = times[idx];
  if (idx < proc.size()) {
    side->have_memory = true;
    side->memory = proc[idx];
  }
  return rp.site_totals_at(idx);
}

struct Work {
  std::string key, layer;
  std::vector<FrameOut> frames;
  double a_bytes = 0, b_bytes = 0, a_count = 0, b_count = 0;
};

void add_sites(Loaded& l, const std::vector<analysis::Replay::SiteTotal>& totals, bool is_b,
               std::unordered_map<std::string, size_t>& index, std::vector<Work>& work) {
  for (const auto& st : totals) {
    std::string layer = analysis::layer_name(static_cast<analysis::Layer>(st.layer));
    auto frames = l.sym->stack(st.stack);
    std::string k = frames_key(layer, frames, SiteKey::kModuleOffset);
    auto it = index.find(k);
    size_t i;
    if (it == index.end()) {
      i = work.size();
      index.emplace(k, i);
      work.push_back(Work{k, layer, std::move(frames)});
    } else {
      i = it->second;
      if (is_b && work[i].a_bytes + work[i].a_count > 0 && work[i].b_bytes + work[i].b_count == 0)
        work[i].frames = std::move(frames);  // show B's addresses where B has the site
    }
    (is_b ? work[i].b_bytes : work[i].a_bytes) += st.bytes;
    (is_b ? work[i].b_count : work[i].a_count) += st.count;
  }
}

}  // namespace

const char* DiffSite::status() const {
  if (a_bytes == 0 && a_count == 0) return (b_bytes || b_count) ? "new" : "same";
  if (b_bytes == 0 && b_count == 0) return "gone";
  if (delta_bytes() > 0 || (delta_bytes() == 0 && delta_count() > 0)) return "grew";
  if (delta_bytes() < 0 || (delta_bytes() == 0 && delta_count() < 0)) return "shrank";
  return "same";
}

DiffSpec parse_diff_spec(const std::string& spec) {
  DiffSpec d;
  size_t at = spec.rfind('@');
  if (at == std::string::npos) {
    d.path = spec;
  } else {
    std::string prefix = spec.substr(0, at), suffix = spec.substr(at + 1);
    double t = 0;
    bool time_ok = parse_seconds(suffix, &t);
    if (time_ok && !(is_file(spec) && !is_file(prefix))) {
      d.path = prefix;
      d.at_s = t;
    } else if (is_file(spec)) {
      d.path = spec;
    } else {
      throw DiffError("bad time in '" + spec + "': expected CAPTURE@SECONDS, e.g. run.lsc@10");
    }
  }
  if (d.path.empty()) throw DiffError("'" + spec + "' names no capture: expected CAPTURE or CAPTURE@SECONDS");
  return d;
}

namespace {
// A tree root's side: each member's sites at the same moment (seconds since the root began),
// added to the side's. A member begun later, or ended before that moment, holds nothing then.
size_t add_tree_members(const DiffSpec& spec, bool is_b, const capture::ReadProgress& progress,
                        std::unordered_map<std::string, size_t>& index, std::vector<Work>& work) {
  const std::vector<TreeMember> ms = tree_members(spec.path);
  if (ms.empty()) return 0;
  const uint64_t root_start = capture::Reader(spec.path).header().start_time_ns;
  size_t n = 0;
  for (const auto& m : ms) {
    const double off = m.start_unix_ns >= root_start ? static_cast<double>(m.start_unix_ns - root_start) / 1e9 : 0;
    DiffSpec ms_spec{m.path, std::nullopt};
    if (spec.at_s) {
      if (*spec.at_s < off) continue;
      ms_spec.at_s = *spec.at_s - off;
    }
    std::unique_ptr<Loaded> l = load(m.path, progress);
    DiffSide side;
    try {
      auto totals = resolve(*l, m.path, ms_spec, &side);
      add_sites(*l, totals, is_b, index, work);
      ++n;
    } catch (const DiffError&) {  // it had ended by then: nothing of it was live
    }
  }
  return n;
}
}  // namespace

Diff build_diff(const std::string& a_spec, const std::string& b_spec, const capture::ReadProgress& progress, bool tree) {
  DiffSpec sa = parse_diff_spec(a_spec), sb = parse_diff_spec(b_spec);
  std::unique_ptr<Loaded> la = load(sa.path, progress), lb;
  bool same_file = sa.path == sb.path;
  if (!same_file) {
    struct stat s1 {}, s2 {};
    same_file = stat(sa.path.c_str(), &s1) == 0 && stat(sb.path.c_str(), &s2) == 0 && s1.st_dev == s2.st_dev &&
                s1.st_ino == s2.st_ino;
  }
  if (!same_file) lb = load(sb.path, progress);
  Loaded& A = *la;
  Loaded& B = same_file ? *la : *lb;

  Diff d;
  auto ta = resolve(A, a_spec, sa, &d.a);
  auto tb = resolve(B, b_spec, sb, &d.b);

  std::unordered_map<std::string, size_t> index;
  std::vector<Work> work;
  add_sites(A, ta, false, index, work);
  add_sites(B, tb, true, index, work);
  size_t tree_a = 0, tree_b = 0;
  if (tree) {
    tree_a = add_tree_members(sa, false, progress, index, work);
    tree_b = add_tree_members(sb, true, progress, index, work);
  }

  std::vector<std::pair<std::string, DiffSite>> out;
  out.reserve(work.size());
  for (auto& w : work) {
    DiffSite s;
    s.layer = std::move(w.layer);
    s.frames = std::move(w.frames);
    s.a_bytes = rounded(w.a_bytes);
    s.b_bytes = rounded(w.b_bytes);
    s.a_count = rounded(w.a_count);
    s.b_count = rounded(w.b_count);
    if (!s.a_bytes && !s.a_count && !s.b_bytes && !s.b_count) continue;
    out.emplace_back(std::move(w.key), std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
    const DiffSite &a = x.second, &b = y.second;
    if (a.delta_bytes() != b.delta_bytes()) return a.delta_bytes() > b.delta_bytes();
    if (a.delta_count() != b.delta_count()) return a.delta_count() > b.delta_count();
    if (a.b_bytes != b.b_bytes) return a.b_bytes > b.b_bytes;
    return x.first < y.first;
  });
  for (auto& [k, s] : out) {
    std::string st = s.status();
    if (st == "new") ++d.n_new;
    else if (st == "grew") ++d.n_grew;
    else if (st == "shrank") ++d.n_shrank;
    else if (st == "gone") ++d.n_gone;
    else ++d.n_same;
    d.a.live_bytes += static_cast<double>(s.a_bytes);
    d.a.live_count += static_cast<double>(s.a_count);
    d.b.live_bytes += static_cast<double>(s.b_bytes);
    d.b.live_count += static_cast<double>(s.b_count);
    d.sites.push_back(std::move(s));
  }

  if (d.a.sample_rate || d.b.sample_rate) {
    d.warnings.push_back("allocations were sampled (A: " +
                         (d.a.sample_rate ? "one sample per " + format_bytes(d.a.sample_rate) : std::string("not sampled")) +
                         ", B: " +
                         (d.b.sample_rate ? "one sample per " + format_bytes(d.b.sample_rate) : std::string("not sampled")) +
                         "): bytes and counts are estimates, and small deltas are noise");
  }
  auto completeness = [&](const DiffSide& s, const char* name) {
    if (s.complete) return;
    d.warnings.push_back(std::string(name) + ": " + s.path +
                         " has no clean stop (the process was killed, or is still running); its end is the last flush");
  };
  if (tree_a || tree_b)
    d.warnings.push_back("process trees (run --follow-fork): A merges " + std::to_string(tree_a + 1) + " processes, B " +
                         std::to_string(tree_b + 1) + "; --pid PID compares one process");
  completeness(d.a, "A");
  if (!same_file) completeness(d.b, "B");
  if (same_file && d.a.at_s > d.b.at_s)
    d.warnings.push_back("A (" + seconds_text(d.a.at_s) + ") is later than B (" + seconds_text(d.b.at_s) +
                         ") in the same capture; deltas are still B minus A");
  return d;
}

namespace {

std::string side_text(const DiffSide& s) {
  std::string out = s.path + " ";
  if (s.end) out += "at its end (" + seconds_text(s.at_s) + ")";
  else if (s.start) out += "at the start (nothing live yet)";
  else out += "at " + seconds_text(s.at_s);
  if (s.requested_s && !s.end && !s.start && std::fabs(*s.requested_s - s.at_s) > 0.005)
    out += ", the snapshot before @" + seconds_text(*s.requested_s);
  return out;
}

// Indices of the sites to show: up to `limit` that grew (most first) and up to `limit` that
// shrank (most first).
void select(const Diff& d, size_t limit, std::vector<size_t>* grew, std::vector<size_t>* shrank) {
  for (size_t i = 0; i < d.sites.size() && grew->size() < limit; ++i) {
    std::string st = d.sites[i].status();
    if (st != "new" && st != "grew") break;
    grew->push_back(i);
  }
  for (size_t i = d.sites.size(); i-- > 0 && shrank->size() < limit;) {
    std::string st = d.sites[i].status();
    if (st != "shrank" && st != "gone") break;
    shrank->push_back(i);
  }
}

}  // namespace

std::string render_diff_text(const Diff& d, const RenderOptions& opt) {
  std::ostringstream o;
  char line[512];
  o << "leakscope diff\n";
  o << "  A: " << side_text(d.a) << "\n";
  o << "  B: " << side_text(d.b) << "\n";
  for (const auto& w : d.warnings) o << "  warning: " << w << "\n";

  std::vector<size_t> grew, shrank;
  select(d, opt.limit, &grew, &shrank);
  bool folded = false;
  auto site = [&](size_t n, const DiffSite& s) {
    std::string st = s.status();
    snprintf(line, sizeof line, "#%zu  %s, %s blocks  (%s -> %s)  [%s%s]\n", n, signed_bytes(s.delta_bytes()).c_str(),
             signed_count(s.delta_count()).c_str(), format_bytes(static_cast<uint64_t>(s.a_bytes)).c_str(),
             format_bytes(static_cast<uint64_t>(s.b_bytes)).c_str(), s.layer.c_str(),
             st == "new" || st == "gone" ? (", " + st).c_str() : "");
    o << line;
    folded |= stack_text(o, s.frames, opt.all_frames);
  };
  size_t n_up = d.n_new + d.n_grew, n_down = d.n_shrank + d.n_gone;
  o << "\nGrew, most first (" << with_commas(n_up) << " site" << (n_up == 1 ? "" : "s") << ", " << with_commas(d.n_new)
    << " new):\n";
  if (grew.empty()) o << "  (nothing grew)\n";
  for (size_t i = 0; i < grew.size(); ++i) site(i + 1, d.sites[grew[i]]);
  if (n_up > grew.size()) o << "  ... " << with_commas(n_up - grew.size()) << " more (use --limit)\n";
  o << "\nShrank, most first (" << with_commas(n_down) << " site" << (n_down == 1 ? "" : "s") << ", "
    << with_commas(d.n_gone) << " gone):\n";
  if (shrank.empty()) o << "  (nothing shrank)\n";
  for (size_t i = 0; i < shrank.size(); ++i) site(i + 1, d.sites[shrank[i]]);
  if (n_down > shrank.size()) o << "  ... " << with_commas(n_down - shrank.size()) << " more (use --limit)\n";
  if (folded) o << "\n" << fold_note_text() << "\n";
  if (d.n_same) o << "\nUnchanged: " << with_commas(d.n_same) << " site" << (d.n_same == 1 ? "" : "s") << "\n";

  int64_t ab = rounded(d.a.live_bytes), bb = rounded(d.b.live_bytes), ac = rounded(d.a.live_count),
          bc = rounded(d.b.live_count);
  o << "\nLive (all sites): " << format_bytes(static_cast<uint64_t>(ab)) << " in " << with_commas(static_cast<uint64_t>(ac))
    << " blocks -> " << format_bytes(static_cast<uint64_t>(bb)) << " in " << with_commas(static_cast<uint64_t>(bc))
    << " blocks: " << signed_bytes(bb - ab) << ", " << signed_count(bc - ac) << " blocks\n";

  if (d.a.have_memory || d.b.have_memory) {
    bool py = d.a.python_version || d.b.python_version;
    snprintf(line, sizeof line, "\nMemory by layer (at each snapshot)   %12s %12s %12s\n", "A", "B", "delta");
    o << line;
    auto row = [&](const char* name, double analysis::ProcessPoint::*field) {
      std::string a = d.a.have_memory ? format_bytes(static_cast<uint64_t>(d.a.memory.*field)) : "-";
      std::string b = d.b.have_memory ? format_bytes(static_cast<uint64_t>(d.b.memory.*field)) : "-";
      std::string delta = d.a.have_memory && d.b.have_memory
                              ? signed_bytes(static_cast<int64_t>(std::llround(d.b.memory.*field)) -
                                             static_cast<int64_t>(std::llround(d.a.memory.*field)))
                              : "-";
      snprintf(line, sizeof line, "  %-34s %12s %12s %12s\n", name, a.c_str(), b.c_str(), delta.c_str());
      o << line;
    };
    row("RSS", &analysis::ProcessPoint::rss);
    row("  anonymous", &analysis::ProcessPoint::rss_anon);
    row("  file-backed and shared", &analysis::ProcessPoint::rss_file);
    row("tracked live", &analysis::ProcessPoint::live);
    if (py) {
      row("live Python objects", &analysis::ProcessPoint::python);
      row("pymalloc arenas", &analysis::ProcessPoint::arena);
      row("  free inside pymalloc arenas", &analysis::ProcessPoint::pymalloc_free);
    }
    row("glibc malloc in use", &analysis::ProcessPoint::glibc_in_use);
    row("glibc free but retained", &analysis::ProcessPoint::glibc_free);
    row("anonymous mmap (tracked, live)", &analysis::ProcessPoint::mmap);
  }
  return o.str();
}

nlohmann::json render_diff_json(const Diff& d, const RenderOptions& opt) {
  using nlohmann::json;
  json j;
  j["schema"] = "leakscope.diff/1";
  auto side = [](const DiffSide& s) {
    return json{{"path", s.path},
                {"spec", s.spec},
                {"at_s", s.at_s},
                {"requested_at_s", s.requested_s ? json(*s.requested_s) : json(nullptr)},
                {"end", s.end},
                {"start", s.start},
                {"duration_s", s.duration_s},
                {"complete", s.complete},
                {"sample_rate", s.sample_rate},
                {"python_version", s.python_version ? json(*s.python_version) : json(nullptr)}};
  };
  j["a"] = side(d.a);
  j["b"] = side(d.b);
  int64_t ab = rounded(d.a.live_bytes), bb = rounded(d.b.live_bytes), ac = rounded(d.a.live_count),
          bc = rounded(d.b.live_count);
  j["totals"] = {{"a_bytes", ab},           {"b_bytes", bb},           {"delta_bytes", bb - ab},
                 {"a_count", ac},           {"b_count", bc},           {"delta_count", bc - ac},
                 {"sites_new", d.n_new},    {"sites_grew", d.n_grew},  {"sites_same", d.n_same},
                 {"sites_shrank", d.n_shrank}, {"sites_gone", d.n_gone}};
  bool py = d.a.python_version || d.b.python_version;
  json layers = json::object();
  auto layer = [&](const char* name, double analysis::ProcessPoint::*field, bool python_only) {
    auto val = [&](const DiffSide& s) -> json {
      if (!s.have_memory || (python_only && !s.python_version)) return nullptr;
      return static_cast<int64_t>(std::llround(s.memory.*field));
    };
    json a = val(d.a), b = val(d.b);
    json delta = a.is_null() || b.is_null() ? json(nullptr) : json(b.get<int64_t>() - a.get<int64_t>());
    if (python_only && !py) return;
    layers[name] = {{"a", a}, {"b", b}, {"delta", delta}};
  };
  layer("rss_bytes", &analysis::ProcessPoint::rss, false);
  layer("rss_anon_bytes", &analysis::ProcessPoint::rss_anon, false);
  layer("rss_file_bytes", &analysis::ProcessPoint::rss_file, false);
  layer("live_bytes", &analysis::ProcessPoint::live, false);
  layer("python_objects_bytes", &analysis::ProcessPoint::python, true);
  layer("pymalloc_arena_bytes", &analysis::ProcessPoint::arena, true);
  layer("pymalloc_free_bytes", &analysis::ProcessPoint::pymalloc_free, true);
  layer("glibc_in_use_bytes", &analysis::ProcessPoint::glibc_in_use, false);
  layer("glibc_free_bytes", &analysis::ProcessPoint::glibc_free, false);
  layer("mmap_bytes", &analysis::ProcessPoint::mmap, false);
  j["layers"] = layers;

  std::vector<size_t> grew, shrank;
  select(d, opt.limit, &grew, &shrank);
  std::reverse(shrank.begin(), shrank.end());  // keep delta_bytes descending
  json sites = json::array();
  for (const auto* sel : {&grew, &shrank})
    for (size_t i : *sel) {
      const DiffSite& s = d.sites[i];
      sites.push_back({{"delta_bytes", s.delta_bytes()},
                       {"delta_count", s.delta_count()},
                       {"a_bytes", s.a_bytes},
                       {"b_bytes", s.b_bytes},
                       {"a_count", s.a_count},
                       {"b_count", s.b_count},
                       {"status", s.status()},
                       {"layer", s.layer},
                       {"frames", frames_json(s.frames)}});
    }
  j["sites"] = sites;
  j["warnings"] = d.warnings;
  return j;
}

}  // namespace leakscope::report
