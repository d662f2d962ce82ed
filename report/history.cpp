// Live bytes per site at evenly chosen snapshots: see history.h.
#include "report/history.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "analysis/replay.h"
#include "report/sites.h"

namespace leakscope::report {

namespace {

// Up to kHistorySnapshots indices into `n` snapshots, evenly spread, first and last included.
std::vector<size_t> chosen_snapshots(size_t n) {
  std::vector<size_t> idx;
  if (n <= kHistorySnapshots) {
    for (size_t i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  for (size_t j = 0; j < kHistorySnapshots; ++j) idx.push_back(j * (n - 1) / (kHistorySnapshots - 1));
  return idx;
}

double peak(const HistorySite& s) { return s.bytes.empty() ? 0 : *std::max_element(s.bytes.begin(), s.bytes.end()); }

}  // namespace

std::shared_ptr<const HistoryOut> build_history(const analysis::Replay& rp, Symbolizer& sym,
                                                const std::vector<char>& is_arena) {
  auto h = std::make_shared<HistoryOut>();
  const auto& times = rp.snapshot_times();
  h->snapshots = times.size();
  const std::vector<size_t> idx = chosen_snapshots(times.size());
  const size_t k = idx.size();
  for (size_t i : idx) h->t_s.push_back(times[i]);

  // Early arenas (bytes per mmap site at the end) come off that site at every moment: they
  // were mapped before the program's own work and stay, so the end figure is the one to take.
  std::unordered_map<uint64_t, double> arena_off;  // stack * 4 + layer
  {
    size_t i = 0;
    for (const auto& [addr, e] : rp.live_mmaps())
      if (is_arena[i++]) arena_off[static_cast<uint64_t>(e.stack) * 4 + static_cast<uint64_t>(analysis::Layer::kMmap)] += static_cast<double>(e.size);
  }

  // Values per (stack, layer) key, then merged into symbolized sites.
  std::unordered_map<uint64_t, size_t> row_of;
  std::vector<std::pair<uint64_t, std::vector<double>>> rows;
  for (size_t j = 0; j < k; ++j) {
    for (const auto& t : rp.site_totals_at(idx[j])) {
      const uint64_t key = static_cast<uint64_t>(t.stack) * 4 + t.layer;
      double b = t.bytes;
      if (auto it = arena_off.find(key); it != arena_off.end()) b -= std::min(b, it->second);
      if (b <= 0) continue;
      auto [it, fresh] = row_of.emplace(key, rows.size());
      if (fresh) rows.emplace_back(key, std::vector<double>(k, 0.0));
      rows[it->second].second[j] += b;
    }
  }
  std::unordered_map<std::string, size_t> site_of;
  std::vector<HistorySite> sites;
  for (auto& [key, values] : rows) {
    std::string layer = analysis::layer_name(static_cast<analysis::Layer>(key % 4));
    const uint32_t id = static_cast<uint32_t>(key / 4);
    auto [it, fresh] = site_of.emplace(sym.key(id, layer), sites.size());
    if (fresh) {
      sites.push_back(HistorySite{std::move(layer), sym.stack(id), std::move(values)});
      continue;
    }
    HistorySite& s = sites[it->second];
    for (size_t j = 0; j < k; ++j) s.bytes[j] += values[j];
  }
  std::vector<std::pair<double, size_t>> order;
  for (size_t i = 0; i < sites.size(); ++i) order.emplace_back(peak(sites[i]), i);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });

  std::map<std::string, HistorySite> other;  // by layer, in a stable order
  for (size_t r = 0; r < order.size(); ++r) {
    HistorySite& s = sites[order[r].second];
    if (r < kHistorySites) {
      h->sites.push_back(std::move(s));
      continue;
    }
    ++h->other_sites;
    HistorySite& o = other[s.layer];
    if (o.bytes.empty()) {
      o.layer = s.layer;
      o.bytes.assign(k, 0.0);
    }
    for (size_t j = 0; j < k; ++j) o.bytes[j] += s.bytes[j];
  }
  for (auto& [layer, o] : other) h->other.push_back(std::move(o));
  return h;
}

}  // namespace leakscope::report
