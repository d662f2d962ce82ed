// Retention paths in the report: see retention_report.h.
#include "report/retention_report.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <unordered_map>

#include "analysis/replay.h"
#include "analysis/retention_record.h"
#include "report/report.h"
#include "report/sites.h"
#include "report/words.h"

namespace leakscope::report {
namespace {

constexpr size_t kShownGroups = 3;

std::string join_path(const std::vector<std::string>& p) {
  std::string s;
  for (size_t i = 0; i < p.size(); ++i) s += (i ? " \u2192 " : "") + p[i];
  return s;
}

// Groups of one site's stacks with the same kept-by path are one group.
void merge_into(std::vector<KeptByOut>& into, const analysis::RetentionGroup& g) {
  for (auto& k : into)
    if (k.kept_by == g.kept_by) {
      k.objects += static_cast<double>(g.objects);
      k.bytes += static_cast<double>(g.bytes);
      k.retained_bytes += static_cast<double>(g.retained_bytes);
      return;
    }
  into.push_back(KeptByOut{g.kept_by, g.example, static_cast<double>(g.objects), static_cast<double>(g.bytes),
                           static_cast<double>(g.retained_bytes)});
}

}  // namespace

void add_retention(const analysis::Replay& rp, Symbolizer& sym, Report& r) {
  if (!rp.have_retention()) return;
  const analysis::RetentionResult res = analysis::decode_retention(rp.retention_payload());
  auto out = std::make_shared<RetentionOut>();
  out->at_s = static_cast<double>(res.time_ns) / 1e9;
  out->pause_s = static_cast<double>(res.pause_ns) / 1e9;
  out->objects = res.objects;
  out->cut_short = (res.flags & analysis::kRetentionCutShort) != 0;
  out->approximate = (res.flags & (analysis::kRetentionNotConverged | analysis::kRetentionOutOfMemory)) != 0;
  for (const auto& h : res.holders) out->holders.push_back(HolderOut{h.path, static_cast<double>(h.retained_bytes)});
  // Sites by their key; a group's objects are Python objects (the P stream's layer).
  std::unordered_map<std::string, std::vector<KeptByOut>> by_site;
  std::map<uint32_t, std::string> keys;
  for (const auto& g : res.groups) {
    auto it = keys.find(g.stack);
    if (it == keys.end()) it = keys.emplace(g.stack, sym.key(g.stack, "python")).first;
    merge_into(by_site[it->second], g);
  }
  auto attach = [&](const std::string& key, std::vector<KeptByOut>& dst, double& retained) {
    auto it = by_site.find(key);
    if (it == by_site.end()) return;
    dst = it->second;
    std::stable_sort(dst.begin(), dst.end(), [](const KeptByOut& a, const KeptByOut& b) { return a.bytes > b.bytes; });
    retained = 0;
    for (const auto& k : dst) retained += k.retained_bytes;
  };
  // site_key: both come from this capture's Symbolizer (add_retention runs before any merge)
  for (auto& l : r.leaks) attach(l.site_key, l.kept_alive_by, l.retained_bytes);
  for (auto& s : r.stacks) attach(s.site_key, s.kept_alive_by, s.retained_bytes);
  r.retention = std::move(out);
}

std::string kept_alive_text(const std::vector<KeptByOut>& k, double retained_bytes, const char* indent) {
  if (k.empty()) return "";
  std::ostringstream o;
  o << indent << "kept alive by";
  if (retained_bytes > 0) o << " (retains " << format_bytes(static_cast<uint64_t>(retained_bytes)) << ")";
  o << ":\n";
  for (size_t i = 0; i < k.size() && i < kShownGroups; ++i) {
    o << indent << "  " << with_commas(static_cast<uint64_t>(k[i].objects + 0.5))
      << (k[i].objects >= 1.5 ? " objects" : " object") << " (" << format_bytes(static_cast<uint64_t>(k[i].bytes))
      << "): " << join_path(k[i].kept_by) << "\n";
    o << indent << "    e.g. " << join_path(k[i].example) << "\n";
  }
  if (k.size() > kShownGroups) o << indent << "  ... " << k.size() - kShownGroups << " more paths (--format json)\n";
  return o.str();
}

nlohmann::json kept_alive_json(const std::vector<KeptByOut>& k) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& g : k)
    a.push_back({{"kept_by", g.kept_by}, {"example", g.example}, {"objects", g.objects}, {"bytes", g.bytes},
                 {"retained_bytes", g.retained_bytes}});
  return a;
}

nlohmann::json kept_alive_paths(const std::vector<KeptByOut>& k) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& g : k) a.push_back(g.example);
  return a;
}

std::string holders_text(const RetentionOut& r, size_t limit) {
  if (r.holders.empty()) return "";
  std::ostringstream o;
  char head[256];
  snprintf(head, sizeof head, "What keeps memory alive (at %.2f s, %s objects walked in %.2f s%s):\n", r.at_s,
           with_commas(r.objects).c_str(), r.pause_s, r.cut_short ? ", cut short by the limits" : "");
  o << head;
  for (size_t i = 0; i < r.holders.size() && i < limit; ++i) {
    snprintf(head, sizeof head, "  %10s  ", format_bytes(static_cast<uint64_t>(r.holders[i].retained_bytes)).c_str());
    o << head << join_path(r.holders[i].path) << "\n";
  }
  return o.str();
}

nlohmann::json retention_json(const RetentionOut& r, size_t limit) {
  nlohmann::json holders = nlohmann::json::array();
  for (size_t i = 0; i < r.holders.size() && i < limit; ++i)
    holders.push_back({{"path", r.holders[i].path}, {"retained_bytes", r.holders[i].retained_bytes}});
  return {{"at_s", r.at_s},           {"pause_s", r.pause_s},         {"objects", r.objects},
          {"cut_short", r.cut_short}, {"approximate", r.approximate}, {"holders", holders}};
}

}  // namespace leakscope::report
