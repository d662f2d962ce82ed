// Shared site helpers: see sites.h.
#include <algorithm>
#include "report/sites.h"

#include <cinttypes>
#include <cstdio>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>

#include "symbolize/native_symbolizer.h"
#include "symbolize/python_lines.h"

namespace leakscope::report {

struct SymbolMemo {
  symbolize::NativeSymbolizer ns;
  std::set<std::string> modules;  // what ns was given, one key each
  std::unordered_map<uint64_t, symbolize::PythonLineTable> tables;  // by code id
  std::unordered_map<uint32_t, std::vector<FrameOut>> stacks;       // by stack id
  std::vector<std::string> layers;                                  // the layer names keys were asked for
  std::unordered_map<uint64_t, std::string> keys;                   // stack id * 8 + layers index
  std::unordered_map<std::string, uint32_t> site_of;                // key -> site number
  std::unordered_map<uint64_t, uint32_t> sites;                     // stack id * 8 + layers index -> site
  size_t nodes = 0;                                                 // stack nodes the capture had

  void add_modules(const analysis::Replay& rp) {
    for (const auto& m : rp.modules()) {
      std::string key = m.path + '\0' + m.build_id + '\0' + std::to_string(m.load_bias);
      for (const auto& [vaddr, size] : m.segments) key += ',' + std::to_string(vaddr) + '+' + std::to_string(size);
      if (modules.insert(std::move(key)).second) ns.add_module(m.path, m.build_id, m.load_bias, m.segments);
    }
  }
};

struct SymbolCache::Impl {
  std::map<std::pair<uint64_t, uint64_t>, SymbolMemo> procs;
};

SymbolCache::SymbolCache() : impl_(std::make_unique<Impl>()) {}
SymbolCache::~SymbolCache() = default;

SymbolMemo& SymbolCache::process(uint64_t pid, uint64_t start_ns, const analysis::Replay& rp) {
  const std::pair<uint64_t, uint64_t> who{pid, start_ns};
  // Fewer nodes than last time: not the growing capture the memo was made from (a capture of
  // that pid and start time written anew). Its ids mean other stacks: forget them.
  if (auto it = impl_->procs.find(who); it != impl_->procs.end() && rp.nodes().size() < it->second.nodes)
    impl_->procs.erase(it);
  SymbolMemo& m = impl_->procs[who];
  m.nodes = rp.nodes().size();
  m.add_modules(rp);
  return m;
}

struct Symbolizer::Impl {
  Impl(const analysis::Replay& r, SymbolMemo* memo) : r_(r), m_(memo ? *memo : own_) {
    if (!memo) own_.add_modules(r);
  }
  const std::vector<FrameOut>& stack(uint32_t id) {
    if (auto it = m_.stacks.find(id); it != m_.stacks.end()) return it->second;
    std::vector<FrameOut> out;
    out.reserve(32);
    complete_ = true;
    const auto& nodes = r_.nodes();
    int guard = 0;
    uint32_t at = id;
    while (at != 0 && at < nodes.size() && guard++ < 4096) {
      const auto& n = nodes[at];
      if (n.frame < r_.frames().size()) frame(r_.frames()[n.frame], out);
      at = n.parent;
    }
    if (at != 0) out.push_back(FrameOut{"<stack not in capture>", "", 0, false, "", 0}), complete_ = false;
    out.shrink_to_fit();
    // A stack whose definitions are not all read yet may read whole at the next report: not kept.
    if (!complete_) return scratch_.emplace_back(std::move(out));
    return m_.stacks.emplace(id, std::move(out)).first->second;
  }

  // stack id * 8 + the layer's index: 8 layers at most are memoized (there are 4).
  size_t layer_index(const std::string& layer) {
    size_t li = static_cast<size_t>(std::find(m_.layers.begin(), m_.layers.end(), layer) - m_.layers.begin());
    if (li == m_.layers.size()) m_.layers.push_back(layer);
    return li;
  }
  const std::string& key(uint32_t id, const std::string& layer) {
    const size_t li = layer_index(layer);
    const uint64_t k = static_cast<uint64_t>(id) * 8 + li;
    if (li < 8)
      if (auto it = m_.keys.find(k); it != m_.keys.end()) return it->second;
    std::string s = frames_key(layer, stack(id));
    if (li >= 8 || !m_.stacks.count(id)) return scratch_keys_.emplace_back(std::move(s));
    return m_.keys.emplace(k, std::move(s)).first->second;
  }
  uint32_t site(uint32_t id, const std::string& layer) {
    const size_t li = layer_index(layer);
    const uint64_t k = static_cast<uint64_t>(id) * 8 + li;
    if (li < 8)
      if (auto it = m_.sites.find(k); it != m_.sites.end()) return it->second;
    const std::string& s = key(id, layer);
    const uint32_t n = m_.site_of.emplace(s, static_cast<uint32_t>(m_.site_of.size())).first->second;
    if (li < 8 && m_.stacks.count(id)) m_.sites.emplace(k, n);
    return n;
  }

  void frame(const analysis::Frame& f, std::vector<FrameOut>& out) {
    if (f.native) {
      auto nf = m_.ns.symbolize(f.code_or_ip, true);
      FrameOut o;
      o.native = true;
      o.address = f.code_or_ip;
      o.module_offset = nf.module.empty() ? f.code_or_ip : nf.module_offset;
      o.module = nf.module;
      o.function = nf.function.empty() ? "??" : nf.function;
      o.file = nf.file;
      o.line = nf.line;
      // inlined callers appear as their own frames, innermost first
      if (!nf.inlined.empty()) {
        out.push_back(o);
        for (size_t i = 0; i < nf.inlined.size(); ++i) {
          const auto& in = nf.inlined[i];
          FrameOut c = o;
          c.function = in.function.empty() ? "??" : in.function;
          c.file = in.file;
          c.line = in.line;
          out.push_back(c);
        }
        return;
      }
      out.push_back(o);
      return;
    }
    FrameOut o;
    auto it = r_.codes().find(f.code_or_ip);
    if (it == r_.codes().end()) {
      o.function = "<code not in capture>";
      complete_ = false;
      out.push_back(o);
      return;
    }
    const auto& c = it->second;
    auto lt = m_.tables.find(c.id);
    if (lt == m_.tables.end())
      lt = m_.tables.emplace(c.id, symbolize::PythonLineTable(c.table_kind, c.table, static_cast<int>(c.firstlineno))).first;
    o.function = c.qualname;
    o.file = c.filename;
    int line = lt->second.line(f.instr);
    o.line = line < 0 ? static_cast<int>(c.firstlineno) : line;
    out.push_back(o);
  }
  const analysis::Replay& r_;
  SymbolMemo own_;
  SymbolMemo& m_;
  bool complete_ = true;  // the stack being symbolized had all its definitions
  std::deque<std::vector<FrameOut>> scratch_;  // incomplete stacks, not memoized (stable addresses)
  std::deque<std::string> scratch_keys_;
};

Symbolizer::Symbolizer(const analysis::Replay& r, SymbolMemo* memo) : impl_(std::make_unique<Impl>(r, memo)) {}
Symbolizer::~Symbolizer() = default;
const std::vector<FrameOut>& Symbolizer::stack(uint32_t id) { return impl_->stack(id); }
const std::string& Symbolizer::key(uint32_t id, const std::string& layer) { return impl_->key(id, layer); }
uint32_t Symbolizer::site(uint32_t id, const std::string& layer) { return impl_->site(id, layer); }

std::string frames_key(const std::string& layer, const std::vector<FrameOut>& fs, SiteKey mode) {
  std::string k = layer;
  for (const auto& f : fs) {
    k += '\x1f';
    k += f.function;
    k += '\x1e';
    k += f.file;
    k += ':';
    k += std::to_string(f.line);
    if (f.native && f.file.empty()) {
      if (mode == SiteKey::kAddress) {
        k += '@';
        k += std::to_string(f.address);
      } else {
        k += '@';
        k += f.module;
        k += '+';
        k += std::to_string(f.module_offset);
      }
    }
  }
  return k;
}

std::string with_commas(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::vector<char> early_arena_flags(const analysis::Replay& rp) {
  std::vector<std::pair<uint64_t, uint64_t>> regions;  // (start, end)
  for (const auto& [addr, e] : rp.live_mmaps()) regions.emplace_back(addr, addr + e.size);
  std::vector<char> is_arena(regions.size(), 0);
  if (regions.empty()) return is_arena;
  rp.live_py().for_each([&](const analysis::LiveMap::Entry& e) {
    if (e.size > 512) return;
    auto it = std::upper_bound(regions.begin(), regions.end(), std::make_pair(e.addr, UINT64_MAX));
    if (it == regions.begin()) return;
    --it;
    if (e.addr < it->second) is_arena[static_cast<size_t>(it - regions.begin())] = 1;
  });
  return is_arena;
}

void frame_line(std::ostringstream& o, const FrameOut& f) {
  char line[512];
  o << "      ";
  if (f.native) {
    o << f.function;
    if (!f.file.empty()) o << " at " << f.file << ":" << f.line;
    std::string mod = f.module;
    if (auto p = mod.rfind('/'); p != std::string::npos) mod = mod.substr(p + 1);
    snprintf(line, sizeof line, "  [%s 0x%" PRIx64 "]", mod.empty() ? "?" : mod.c_str(), f.address);
    o << line;
  } else {
    o << f.file << ":" << f.line << " in " << f.function;
  }
  o << "\n";
}

nlohmann::json frames_json(const std::vector<FrameOut>& fs) {
  using nlohmann::json;
  json frames = json::array();
  for (const auto& f : fs) {
    char addr[32];
    snprintf(addr, sizeof addr, "0x%" PRIx64, f.address);
    frames.push_back({{"function", f.function},
                      {"file", f.file.empty() ? json(nullptr) : json(f.file)},
                      {"line", f.line > 0 ? json(f.line) : json(nullptr)},
                      {"native", f.native},
                      {"module", f.native ? json(f.module) : json(nullptr)},
                      {"address", f.native ? json(addr) : json(nullptr)}});
  }
  return frames;
}

// Unicode block sparkline of `v`, resampled to at most `width` cells (max of each bucket).
std::string sparkline(const std::vector<double>& v, size_t width) {
  static const char* const kBars[] = {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
  if (v.empty()) return "";
  size_t cells = std::min(width, v.size());
  std::vector<double> b(cells, 0);
  for (size_t i = 0; i < v.size(); ++i) {
    size_t c = i * cells / v.size();
    b[c] = std::max(b[c], v[i]);
  }
  double lo = *std::min_element(b.begin(), b.end()), hi = *std::max_element(b.begin(), b.end());
  std::string out;
  for (double x : b) {
    int k = hi > lo ? static_cast<int>((x - lo) / (hi - lo) * 7.0 + 0.5) : 0;
    out += kBars[std::clamp(k, 0, 7)];
  }
  return out;
}

}  // namespace leakscope::report
