// Shared site helpers: see sites.h.
#include <algorithm>
#include "report/sites.h"

#include <cinttypes>
#include <cstdio>
#include <unordered_map>

#include "symbolize/native_symbolizer.h"
#include "symbolize/python_lines.h"

namespace leakscope::report {

struct Symbolizer::Impl {
  explicit Impl(const analysis::Replay& r) : r_(r) {
    for (const auto& m : r.modules()) ns_.add_module(m.path, m.build_id, m.load_bias, m.segments);
  }
  std::vector<FrameOut> stack(uint32_t id) {
    std::vector<FrameOut> out;
    const auto& nodes = r_.nodes();
    int guard = 0;
    while (id != 0 && id < nodes.size() && guard++ < 4096) {
      const auto& n = nodes[id];
      if (n.frame < r_.frames().size()) frame(r_.frames()[n.frame], out);
      id = n.parent;
    }
    if (id != 0) out.push_back(FrameOut{"<stack not in capture>", "", 0, false, "", 0});
    return out;
  }

  void frame(const analysis::Frame& f, std::vector<FrameOut>& out) {
    if (f.native) {
      auto nf = ns_.symbolize(f.code_or_ip, true);
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
      out.push_back(o);
      return;
    }
    const auto& c = it->second;
    auto lt = tables_.find(c.id);
    if (lt == tables_.end())
      lt = tables_.emplace(c.id, symbolize::PythonLineTable(c.table_kind, c.table, static_cast<int>(c.firstlineno))).first;
    o.function = c.qualname;
    o.file = c.filename;
    int line = lt->second.line(f.instr);
    o.line = line < 0 ? static_cast<int>(c.firstlineno) : line;
    out.push_back(o);
  }
  const analysis::Replay& r_;
  symbolize::NativeSymbolizer ns_;
  std::unordered_map<uint64_t, symbolize::PythonLineTable> tables_;
};

Symbolizer::Symbolizer(const analysis::Replay& r) : impl_(std::make_unique<Impl>(r)) {}
Symbolizer::~Symbolizer() = default;
std::vector<FrameOut> Symbolizer::stack(uint32_t id) { return impl_->stack(id); }

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
