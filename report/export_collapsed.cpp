// `export --format collapsed` (docs/exports.md, "Collapsed stacks"): `root;...;leaf BYTES`.
#include <cmath>
#include <string>

#include "report/profile.h"
#include "report/render.h"

namespace leakscope::report {

namespace {

// A name as one element: no `;` (the separator) and no line break (the record end).
void append_element(std::string& out, const std::string& name) {
  for (char c : name) out += c == ';' ? ':' : (c == '\n' || c == '\r') ? ' ' : c;
}

}  // namespace

std::string collapsed_document(const Profile& p, const RenderOptions&) {
  std::string out;
  for (const ProfileSample& s : p.samples) {
    const auto bytes = static_cast<unsigned long long>(std::llround(s.inuse_bytes));
    if (!bytes) continue;
    append_element(out, s.layer);
    for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) {
      out += ';';
      append_element(out, frame_label(*it));
    }
    out += ' ';
    out += std::to_string(bytes);
    out += '\n';
  }
  return out;
}

}  // namespace leakscope::report
