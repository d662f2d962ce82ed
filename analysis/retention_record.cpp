// The RETAIN record: see retention_record.h. Written by the agent (agent/retention.cpp).
#include "analysis/retention_record.h"

#include <map>

#include "capture/byte_cursor.h"
#include "capture/reader.h"

namespace leakscope::analysis {
namespace {

constexpr uint64_t kVersion = 1;
constexpr uint64_t kMaxStepsPerPath = 64;

}  // namespace

RetentionResult decode_retention(const std::string& payload) {
  capture::PayloadCursor in(payload, "RETAIN");
  RetentionResult r;
  if (in.varint() != kVersion) in.fail("unknown version");
  r.time_ns = in.varint();
  r.pause_ns = in.varint();
  r.objects = in.varint();
  r.edges = in.varint();
  r.flags = static_cast<uint32_t>(in.varint());
  std::vector<std::string> strings(in.count());
  for (auto& s : strings) s = in.str(4096);
  std::vector<RetentionPath> paths(in.count());
  for (auto& p : paths) {
    size_t n = in.count();
    if (n > kMaxStepsPerPath) in.fail("a path with too many steps");
    for (size_t i = 0; i < n; ++i) p.push_back(strings[in.index(strings.size(), "string")]);
  }
  r.groups.resize(in.count());
  for (auto& g : r.groups) {
    uint64_t stack = in.varint();
    if (stack >= (1ull << 32)) in.fail("a stack id out of range");
    g.stack = static_cast<uint32_t>(stack);
    g.kept_by = paths[in.index(paths.size(), "path")];
    g.example = paths[in.index(paths.size(), "path")];
    g.objects = in.varint();
    g.bytes = in.varint();
    g.retained_bytes = in.varint();
  }
  r.holders.resize(in.count());
  for (auto& h : r.holders) {
    h.path = paths[in.index(paths.size(), "path")];
    h.retained_bytes = in.varint();
  }
  r.stacks.resize(in.count());
  for (auto& s : r.stacks) {
    uint64_t stack = in.varint();
    if (stack >= (1ull << 32)) in.fail("a stack id out of range");
    s.stack = static_cast<uint32_t>(stack);
    s.objects = in.varint();
    s.bytes = in.varint();
  }
  in.end();
  return r;
}

std::string encode_retention(const RetentionResult& r) {
  std::vector<std::string> strings;
  std::map<std::string, uint64_t> string_ids;
  std::vector<std::vector<uint64_t>> paths;
  std::map<std::vector<uint64_t>, uint64_t> path_ids;
  auto path_id = [&](const RetentionPath& p) {
    std::vector<uint64_t> ids;
    for (const auto& s : p) {
      auto [it, fresh] = string_ids.emplace(s, strings.size());
      if (fresh) strings.push_back(s);
      ids.push_back(it->second);
    }
    auto [it, fresh] = path_ids.emplace(ids, paths.size());
    if (fresh) paths.push_back(ids);
    return it->second;
  };
  std::vector<uint64_t> group_paths, holder_paths;
  for (const auto& g : r.groups) {
    group_paths.push_back(path_id(g.kept_by));
    group_paths.push_back(path_id(g.example));
  }
  for (const auto& h : r.holders) holder_paths.push_back(path_id(h.path));
  std::string out;
  using capture::append_str;
  using capture::append_varint;
  for (uint64_t v : {kVersion, r.time_ns, r.pause_ns, r.objects, r.edges, static_cast<uint64_t>(r.flags)})
    append_varint(out, v);
  append_varint(out, strings.size());
  for (const auto& s : strings) append_str(out, s);
  append_varint(out, paths.size());
  for (const auto& p : paths) {
    append_varint(out, p.size());
    for (uint64_t id : p) append_varint(out, id);
  }
  append_varint(out, r.groups.size());
  for (size_t i = 0; i < r.groups.size(); ++i) {
    const auto& g = r.groups[i];
    for (uint64_t v : {static_cast<uint64_t>(g.stack), group_paths[2 * i], group_paths[2 * i + 1], g.objects, g.bytes,
                       g.retained_bytes})
      append_varint(out, v);
  }
  append_varint(out, r.holders.size());
  for (size_t i = 0; i < r.holders.size(); ++i) {
    append_varint(out, holder_paths[i]);
    append_varint(out, r.holders[i].retained_bytes);
  }
  append_varint(out, r.stacks.size());
  for (const auto& s : r.stacks)
    for (uint64_t v : {static_cast<uint64_t>(s.stack), s.objects, s.bytes}) append_varint(out, v);
  return out;
}

}  // namespace leakscope::analysis
