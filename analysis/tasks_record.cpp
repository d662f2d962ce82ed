// The TASKS record: see tasks_record.h. Written by the agent (agent/asyncio_tasks.cpp).
#include "analysis/tasks_record.h"

#include "capture/byte_cursor.h"
#include "capture/reader.h"

namespace leakscope::analysis {
namespace {

constexpr uint64_t kVersion = 1;
constexpr size_t kMaxText = 256, kMaxGroups = 1024;

}  // namespace

TasksSample decode_tasks(const std::string& payload) {
  capture::PayloadCursor in(payload, "TASKS");
  TasksSample s;
  if (in.varint() != kVersion) in.fail("unknown version");
  s.time_ns = in.varint();
  s.pending = in.varint();
  const uint64_t flags = in.varint();
  if (flags > 1) in.fail("unknown flags");
  s.reach_known = flags & 1;
  const uint64_t n = in.varint();
  if (n > kMaxGroups || n > in.left()) in.fail("too many groups");
  s.groups.resize(static_cast<size_t>(n));
  for (auto& g : s.groups) {
    const uint64_t stack = in.varint();
    if (stack > (1ull << 32)) in.fail("a stack id out of range");
    if (stack) g.stack = static_cast<uint32_t>(stack - 1);
    g.coroutine = in.str(kMaxText);
    g.awaiting = in.str(kMaxText);
    g.count = in.varint();
    g.oldest_age_ms = in.varint();
    g.unreferenced = in.varint();
    if (g.unreferenced > g.count) in.fail("more unreferenced tasks than tasks");
  }
  in.end();
  return s;
}

std::string encode_tasks(const TasksSample& s) {
  std::string out;
  using capture::append_str;
  using capture::append_varint;
  for (uint64_t v : {kVersion, s.time_ns, s.pending, static_cast<uint64_t>(s.reach_known ? 1 : 0),
                     static_cast<uint64_t>(s.groups.size())})
    append_varint(out, v);
  for (const auto& g : s.groups) {
    append_varint(out, g.stack ? static_cast<uint64_t>(*g.stack) + 1 : 0);
    append_str(out, g.coroutine);
    append_str(out, g.awaiting);
    append_varint(out, g.count);
    append_varint(out, g.oldest_age_ms);
    append_varint(out, g.unreferenced);
  }
  return out;
}

}  // namespace leakscope::analysis
