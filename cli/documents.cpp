// See documents.h.
#include "cli/documents.h"

#include <cstdint>
#include <cstdio>
#include <new>
#include <stdexcept>

#include "capture/reader.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "report/diff.h"
#include "report/profile.h"
#include "report/report.h"
#include "report/tree.h"

namespace leakscope::cli {

namespace {

constexpr int kExitUsage = 2;

// Runs one document command: the errors a bad capture, a bad diff side or a bad --at can raise
// (CaptureError, DiffError: runtime_error; invalid_argument) and running out of memory become
// one line and exit status 2.
template <typename F>
int one_line_errors(const std::string& what, F&& command) {
  try {
    return command();
  } catch (const std::bad_alloc&) {
    fprintf(stderr, "leakscope: out of memory reading %s\n", what.c_str());
  } catch (const std::invalid_argument& e) {
    fprintf(stderr, "leakscope: %s\n", e.what());
  } catch (const std::runtime_error& e) {
    fprintf(stderr, "leakscope: %s\n", e.what());
  }
  return kExitUsage;
}

}  // namespace

// `format` is one of the renderers (the option's choices come from that table).
// --pid: the same side (CAPTURE or CAPTURE@SECONDS) with the capture of that process.
std::string side_of_pid(const std::string& spec, uint64_t pid) {
  report::DiffSpec s = report::parse_diff_spec(spec);
  std::string out = report::tree_capture_of(s.path, pid);
  if (s.at_s) {
    char t[64];
    snprintf(t, sizeof t, "@%.9g", *s.at_s);
    out += t;
  }
  return out;
}

int cmd_report(const std::string& path_in, const report::Renderer& format, report::RenderOptions opt,
               const std::string& output, std::optional<uint64_t> pid) {
  return one_line_errors(path_in, [&] {
    const std::string path = pid ? report::tree_capture_of(path_in, *pid) : path_in;
    report::BuildOptions bo = report::build_options(format);
    bo.tree = !pid;  // one process of the tree: that process alone
    auto r = with_progress([&](const auto& cb) { return report::build_report(path, bo, cb); });
    if (!opt.limit) opt.limit = format.default_limit;
    return emit_document(format.report(r, opt), output, format.binary);
  });
}

int cmd_diff(const std::string& a_in, const std::string& b_in, const report::Renderer& format,
             report::RenderOptions opt, const std::string& output, std::optional<uint64_t> pid) {
  return one_line_errors(a_in + " and " + b_in, [&] {
    const std::string a = pid ? side_of_pid(a_in, *pid) : a_in, b = pid ? side_of_pid(b_in, *pid) : b_in;
    auto d = with_progress([&](const auto& cb) { return report::build_diff(a, b, cb, !pid); });
    if (!opt.limit) opt.limit = format.default_limit ? format.default_limit : SIZE_MAX;  // 0: no limit (pprof)
    return emit_document(format.diff(d, opt), output, format.binary);
  });
}

// `export`: the profile at one moment, in a format other tools read (docs/exports.md).
int cmd_export(const std::string& path_in, const report::Renderer& format, std::optional<double> at_s,
               const std::string& output, std::optional<uint64_t> pid) {
  return one_line_errors(path_in, [&] {
    const std::string path = pid ? report::tree_capture_of(path_in, *pid) : path_in;
    auto p = with_progress([&](const auto& cb) {
      return pid ? report::build_profile(path, at_s, cb) : report::build_tree_profile(path, at_s, cb);
    });
    report::RenderOptions opt{format.default_limit ? format.default_limit : SIZE_MAX, false};
    return emit_document(format.profile(p, opt), output, format.binary);
  });
}

}  // namespace leakscope::cli
