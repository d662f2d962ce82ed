// The HTML page's data (html_page.h): the Report as the JSON web/leakscope.js reads. Every
// sentence comes from report/words.h or the Report itself; this file only picks and bounds.
#include <algorithm>
#include <cstdio>
#include <unordered_map>

#include "report/findleaks_report.h"
#include "report/history.h"
#include "report/html_page.h"
#include "report/profile.h"
#include "report/stack_view.h"
#include "report/words.h"

namespace leakscope::report {

namespace {

using nlohmann::json;

// Every frame label once: the page refers to frames by their index in "frames".
class FrameTable {
 public:
  size_t index(const FrameOut& f) {
    std::string label = frame_label(f);
    auto [it, fresh] = index_.emplace(label, labels_.size());
    if (fresh) labels_.push_back(std::move(label));
    return it->second;
  }
  json labels() const { return labels_; }

 private:
  std::unordered_map<std::string, size_t> index_;
  std::vector<std::string> labels_;
};

// [first, last) index ranges splitting n points into at most m buckets, in order.
std::vector<std::pair<size_t, size_t>> buckets(size_t n, size_t m) {
  std::vector<std::pair<size_t, size_t>> b;
  if (n <= m) {
    for (size_t i = 0; i < n; ++i) b.emplace_back(i, i + 1);
    return b;
  }
  for (size_t j = 0; j < m; ++j) b.emplace_back(j * n / m, (j + 1) * n / m);
  return b;
}

// A series cut to at most m points: each bucket's last time and its highest value, so a peak
// between two kept points is not lost.
json downsample(const std::vector<double>& t, const std::vector<double>& v, size_t m) {
  json ts = json::array(), vs = json::array();
  for (const auto& [a, z] : buckets(std::min(t.size(), v.size()), m)) {
    ts.push_back(t[z - 1]);
    vs.push_back(*std::max_element(v.begin() + static_cast<ptrdiff_t>(a), v.begin() + static_cast<ptrdiff_t>(z)));
  }
  return {{"t_s", ts}, {"bytes", vs}};
}

json capture_json(const Report& r) {
  return {{"path", r.path},         {"argv", r.argv},     {"pid", r.pid},
          {"python_version", r.python_version ? json(*r.python_version) : json(nullptr)},
          {"duration_s", r.duration_s}, {"events", r.events}, {"snapshots", r.snapshots},
          {"thinned", r.thinned},   {"complete", r.complete}, {"sample_rate", r.sample_rate},
          {"attached", r.attached}};
}

json findings_json(const Report& r) {
  json a = json::array();
  for (const auto& f : r.findings) a.push_back({{"kind", f.kind}, {"layer", f.layer}, {"text", f.text}, {"remedy", f.remedy}});
  return a;
}

// Memory by layer over time (the words of the text report's "big picture"), series that are 0
// throughout left out.
json timeline_json(const Report& r) {
  struct Series {
    const char* name;
    double analysis::ProcessPoint::*field;
    bool python_only;
  };
  static constexpr Series kSeries[] = {
      {"RSS", &analysis::ProcessPoint::rss, false},
      {"tracked live", &analysis::ProcessPoint::live, false},
      {"live Python objects", &analysis::ProcessPoint::python, true},
      {"pymalloc free", &analysis::ProcessPoint::pymalloc_free, true},
      {"glibc in use", &analysis::ProcessPoint::glibc_in_use, false},
      {"glibc free, retained", &analysis::ProcessPoint::glibc_free, false},
      {"anonymous mmap", &analysis::ProcessPoint::mmap, false},
  };
  std::vector<double> t;
  for (const auto& p : r.timeline) t.push_back(p.t_s);
  json series = json::array();
  json times = nullptr;
  for (const Series& s : kSeries) {
    if (s.python_only && !r.python_version) continue;
    std::vector<double> v;
    bool any = false;
    for (const auto& p : r.timeline) {
      v.push_back(p.*(s.field));
      any |= v.back() != 0;
    }
    if (!any) continue;
    json d = downsample(t, v, kHtmlTimelinePoints);
    if (times.is_null()) times = d["t_s"];
    series.push_back({{"name", s.name}, {"bytes", d["bytes"]}});
  }
  return {{"t_s", times.is_null() ? json::array() : times}, {"series", series}, {"points", r.timeline.size()}};
}

// A stack as the text report folds it: {"frame": index, "own": bool} or {"fold": words}.
json rows_json(const std::vector<FrameOut>& frames, FrameTable& ft) {
  json rows = json::array();
  for (const StackRow& row : fold_stack(frames)) {
    if (row.folded) {
      rows.push_back({{"fold", fold_text(row.count, row.code)}});
    } else {
      const FrameOut& f = frames[row.first];
      rows.push_back({{"frame", ft.index(f)}, {"own", frame_kind(f) == FrameKind::kOwn}});
    }
  }
  return rows;
}

json kept_json(const std::vector<KeptByOut>& k, size_t limit) {
  json a = json::array();
  for (size_t i = 0; i < k.size() && i < limit; ++i)
    a.push_back({{"kept_by", k[i].kept_by}, {"example", k[i].example}, {"objects", k[i].objects},
                 {"bytes", format_bytes(static_cast<uint64_t>(k[i].bytes))}});
  return a;
}

// Each leaking site with the text report's headline, its growth and what keeps it alive.
json leaks_json(const Report& r, size_t limit, FrameTable& ft) {
  json a = json::array();
  char line[512];
  for (size_t i = 0; i < r.leaks.size() && i < limit; ++i) {
    const LeakOut& l = r.leaks[i];
    snprintf(line, sizeof line, "+%s (%.0f objects/s), %s live now, confidence %.0f%%", rate_text(l.rate_bytes_per_s).c_str(),
             l.rate_count_per_s, format_bytes(static_cast<uint64_t>(l.bytes)).c_str(), l.confidence * 100);
    json stack = json::array();
    for (const FrameOut& f : l.frames) stack.push_back(ft.index(f));
    a.push_back({{"layer", l.layer},
                 {"headline", line},
                 {"reason", l.reason},
                 {"series", downsample(l.t_s, l.series_bytes, kHtmlLeakPoints)},
                 {"stack", stack},
                 {"rows", rows_json(l.frames, ft)},
                 {"kept_alive_by", kept_json(l.kept_alive_by, limit)},
                 {"retained", l.retained_bytes > 0 ? json(format_bytes(static_cast<uint64_t>(l.retained_bytes))) : json(nullptr)}});
  }
  return a;
}

// The first line of a text section: its summary sentence.
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

json lost_json(const std::vector<LostOut>& lost, size_t limit, FrameTable& ft) {
  json a = json::array();
  for (size_t i = 0; i < lost.size() && i < limit; ++i) {
    const LostOut& l = lost[i];
    json examples = json::array();
    for (const auto& e : l.examples) examples.push_back(e.preview);
    a.push_back({{"kind", l.kind},           {"layer", l.layer},
                 {"python_type", l.python_type}, {"bytes", format_bytes(l.bytes)},
                 {"count", l.count},          {"rows", rows_json(l.frames, ft)},
                 {"examples", examples}});
  }
  return a;
}

json findleaks_json(const Report& r, size_t limit, FrameTable& ft) {
  if (!r.findleaks) return nullptr;
  const FindleaksOut& f = *r.findleaks;
  return {{"summary", first_line(render_findleaks_text(f, RenderOptions{1, false}))},
          {"notes", f.notes},
          {"lost", lost_json(f.lost, limit, ft)},
          {"garbage", lost_json(f.garbage, limit, ft)}};
}

json retention_json(const Report& r, size_t limit) {
  if (!r.retention || r.retention->holders.empty()) return nullptr;
  json holders = json::array();
  for (size_t i = 0; i < r.retention->holders.size() && i < limit; ++i)
    holders.push_back({{"path", r.retention->holders[i].path},
                       {"retained", format_bytes(static_cast<uint64_t>(r.retention->holders[i].retained_bytes))}});
  return {{"summary", first_line(holders_text(*r.retention, 1))}, {"holders", holders}};
}

// Live bytes per site at the chosen snapshots; stacks root first, bytes rounded.
json history_json(const HistoryOut& h, FrameTable& ft) {
  auto site = [&](const HistorySite& s) {
    json stack = json::array(), bytes = json::array();
    for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) stack.push_back(ft.index(*it));
    for (double b : s.bytes) bytes.push_back(static_cast<uint64_t>(std::max(0.0, b) + 0.5));
    return json{{"layer", s.layer}, {"stack", stack}, {"bytes", bytes}};
  };
  json sites = json::array(), other = json::array();
  for (const auto& s : h.sites) sites.push_back(site(s));
  for (const auto& s : h.other) other.push_back(site(s));
  return {{"t_s", h.t_s}, {"snapshots", h.snapshots}, {"sites", sites}, {"other", other}, {"other_sites", h.other_sites}};
}

}  // namespace

nlohmann::json html_data(const Report& r, const RenderOptions& opt) {
  FrameTable ft;
  json d;
  d["schema"] = "leakscope.html/1";
  d["capture"] = capture_json(r);
  d["warnings"] = r.warnings;
  d["verdict"] = r.verdict;
  d["process_verdict"] = r.process_verdict;
  d["findings"] = findings_json(r);
  d["totals"] = {{"live", format_bytes(r.live_bytes)},
                 {"live_count", r.live_count},
                 {"peak", format_bytes(r.peak_bytes)},
                 {"peak_time_s", r.peak_time_s},
                 {"allocated", format_bytes(r.alloc_bytes)},
                 {"alloc_count", r.alloc_count}};
  d["timeline"] = timeline_json(r);
  d["history"] = r.history ? history_json(*r.history, ft) : json(nullptr);
  d["leaks"] = leaks_json(r, opt.limit, ft);
  d["leaks_total"] = r.leaks.size();
  d["findleaks"] = findleaks_json(r, opt.limit, ft);
  d["retention"] = retention_json(r, opt.limit);
  d["frames"] = ft.labels();
  return d;
}

std::string script_json(const nlohmann::json& j) {
  const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(s.size() + s.size() / 16);
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    // These bytes occur only inside JSON strings, where \uXXXX means the same character.
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else if (c == '\xe2' && i + 2 < s.size() && s[i + 1] == '\x80' && (s[i + 2] == '\xa8' || s[i + 2] == '\xa9')) {
      out += s[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string html_text(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace leakscope::report
