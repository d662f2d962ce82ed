// The findleaks section: see findleaks_report.h.
#include "report/findleaks_report.h"

#include <cinttypes>
#include <cstdio>
#include <map>
#include <sstream>

#include "analysis/replay.h"
#include "capture/byte_cursor.h"
#include "report/sites.h"
#include "report/stack_view.h"
#include "report/words.h"

namespace leakscope::report {
namespace {

std::string blocks(uint64_t n) { return with_commas(n) + (n == 1 ? " block" : " blocks"); }

}  // namespace

FindleaksOut findleaks_out(const analysis::FindleaksResult& r, Symbolizer& sym) {
  FindleaksOut f;
  f.when = analysis::findleaks_when_name(r.when);
  f.roots = r.conservative ? "conservative" : "precise";
  f.time_s = static_cast<double>(r.time_ns) / 1e9;
  f.totals = r.totals;
  std::map<std::string, size_t> index;
  std::vector<LostOut> all;
  for (const analysis::LostGroup& g : r.groups) {
    std::string layer = analysis::layer_name(static_cast<analysis::Layer>(g.layer & 3));
    std::vector<FrameOut> frames = sym.stack(g.stack);
    std::string key = std::string(analysis::lost_kind_name(g.kind)) + "|" + g.python_type + "|" + frames_key(layer, frames);
    auto it = index.find(key);
    if (it == index.end()) {
      index.emplace(key, all.size());
      LostOut o;
      o.kind = analysis::lost_kind_name(g.kind);
      o.layer = layer;
      o.python_type = g.python_type;
      o.frames = std::move(frames);
      all.push_back(std::move(o));
      it = index.find(key);
    }
    LostOut& o = all[it->second];
    o.bytes += g.bytes;
    o.count += g.count;
    o.unowned_refs += g.unowned_refs;
    for (const auto& ex : g.examples)
      if (o.examples.size() < analysis::kExamplesPerGroup) o.examples.push_back({ex.addr, lost_preview(ex, g.python_type)});
  }
  auto order = [](const std::string& k) { return k == "direct" ? 0 : k == "indirect" ? 1 : 2; };
  std::stable_sort(all.begin(), all.end(), [&](const LostOut& a, const LostOut& b) {
    if (order(a.kind) != order(b.kind)) return order(a.kind) < order(b.kind);
    return a.bytes > b.bytes;
  });
  for (LostOut& o : all) (o.kind == "cyclic-garbage" ? f.garbage : f.lost).push_back(std::move(o));
  for (const auto& [n, c] : r.notes) f.notes.push_back(model_note_text(n, c));
  return f;
}

std::string render_findleaks_text(const FindleaksOut& f, const RenderOptions& opt) {
  std::ostringstream o;
  const auto& t = f.totals;
  o << "Reachability (" << f.when << ", " << f.roots << " roots, at " << std::fixed;
  o.precision(2);
  o << f.time_s << " s): ";
  if (t.lost_count() == 0) o << "nothing lost";
  else
    o << format_bytes(t.lost_bytes()) << " lost in " << blocks(t.lost_count()) << " (direct "
      << format_bytes(t.direct_bytes) << " in " << with_commas(t.direct_count) << ", indirect "
      << format_bytes(t.indirect_bytes) << " in " << with_commas(t.indirect_count) << ")";
  o << "; " << format_bytes(t.reachable_bytes) << " reachable in " << blocks(t.reachable_count) << "\n";
  if (t.garbage_count)
    o << "  cyclic garbage not yet collected (not lost): " << format_bytes(t.garbage_bytes) << " in "
      << blocks(t.garbage_count) << "\n";
  for (const auto& n : f.notes) o << "  note: " << n << "\n";
  size_t shown = 0;
  bool folded = false;
  for (const LostOut& l : f.lost) {
    if (shown++ >= opt.limit) {
      o << "  ... " << (f.lost.size() - opt.limit) << " more (use --limit)\n";
      break;
    }
    o << "#" << shown << "  " << l.kind << ": " << format_bytes(l.bytes) << " in " << blocks(l.count) << "  ["
      << l.layer << (l.python_type.empty() ? "" : ", Python " + l.python_type) << "]";
    if (l.unowned_refs) o << "  " << with_commas(l.unowned_refs) << " reference(s) nobody holds";
    o << "\n";
    for (const auto& ex : l.examples) o << "      at " << capture::hex(ex.address) << ": " << ex.preview << "\n";
    folded |= stack_text(o, l.frames, opt.all_frames);
  }
  if (folded) o << "  " << fold_note_text() << "\n";
  return o.str();
}

nlohmann::json findleaks_json(const FindleaksOut& f, size_t limit) {
  using nlohmann::json;
  auto group = [](const LostOut& l) {
    json ex = json::array();
    for (const auto& e : l.examples) ex.push_back({{"address", capture::hex(e.address)}, {"preview", e.preview}});
    return json{{"kind", l.kind},
                {"layer", l.layer},
                {"bytes", l.bytes},
                {"count", l.count},
                {"python_type", l.python_type.empty() ? json(nullptr) : json(l.python_type)},
                {"unowned_refs", l.unowned_refs},
                {"examples", ex},
                {"frames", frames_json(l.frames)}};
  };
  json lost = json::array(), garbage = json::array();
  for (size_t i = 0; i < f.lost.size() && i < limit; ++i) lost.push_back(group(f.lost[i]));
  for (size_t i = 0; i < f.garbage.size() && i < limit; ++i) garbage.push_back(group(f.garbage[i]));
  const auto& t = f.totals;
  return json{{"when", f.when},
              {"roots", f.roots},
              {"time_s", f.time_s},
              {"totals",
               {{"lost_bytes", t.lost_bytes()},
                {"lost_count", t.lost_count()},
                {"direct_bytes", t.direct_bytes},
                {"direct_count", t.direct_count},
                {"indirect_bytes", t.indirect_bytes},
                {"indirect_count", t.indirect_count},
                {"reachable_bytes", t.reachable_bytes},
                {"reachable_count", t.reachable_count},
                {"cyclic_garbage_bytes", t.garbage_bytes},
                {"cyclic_garbage_count", t.garbage_count},
                {"immortal_unreferenced", t.immortal_count},
                {"root_bytes", t.root_bytes}}},
              {"lost", lost},
              {"cyclic_garbage", garbage},
              {"notes", f.notes}};
}

std::string findleaks_text_document(const FindleaksDoc& d, const RenderOptions& opt) {
  const FindleaksTarget& t = d.target;
  std::string head = "leakscope findleaks: ";
  char stopped[32];
  snprintf(stopped, sizeof stopped, "%.3f", t.stopped_s);
  if (t.live)
    head += "process " + std::to_string(t.pid) + " (stopped " + stopped + " s to copy " + format_bytes(t.copied_bytes) +
            "; capture " + t.capture + ")\n";
  else
    head += "heap dump " + t.dump + " of process " + std::to_string(t.pid) + "\n";
  return head + render_findleaks_text(d.result, opt);
}

std::string findleaks_json_document(const FindleaksDoc& d, const RenderOptions& opt) {
  using nlohmann::json;
  const FindleaksTarget& t = d.target;
  json j;
  j["schema"] = "leakscope.findleaks/1";
  j["target"] = {{"pid", t.pid},
                 {"capture", t.capture.empty() ? json(nullptr) : json(t.capture)},
                 {"dump", t.dump.empty() ? json(nullptr) : json(t.dump)},
                 {"stopped_s", t.live ? json(t.stopped_s) : json(nullptr)},
                 {"copied_bytes", t.live ? json(t.copied_bytes) : json(nullptr)}};
  j["findleaks"] = findleaks_json(d.result, opt.limit);
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace leakscope::report
