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
int cmd_report(const std::string& path, const report::Renderer& format, report::RenderOptions opt,
               const std::string& output) {
  return one_line_errors(path, [&] {
    auto r = with_progress(
        [&](const auto& cb) { return report::build_report(path, report::build_options(format), cb); });
    if (!opt.limit) opt.limit = format.default_limit;
    return emit_document(format.report(r, opt), output, format.binary);
  });
}

int cmd_diff(const std::string& a, const std::string& b, const report::Renderer& format,
             report::RenderOptions opt, const std::string& output) {
  return one_line_errors(a + " and " + b, [&] {
    auto d = with_progress([&](const auto& cb) { return report::build_diff(a, b, cb); });
    if (!opt.limit) opt.limit = format.default_limit ? format.default_limit : SIZE_MAX;  // 0: no limit (pprof)
    return emit_document(format.diff(d, opt), output, format.binary);
  });
}

// `export`: the profile at one moment, in a format other tools read (docs/exports.md).
int cmd_export(const std::string& path, const report::Renderer& format, std::optional<double> at_s,
               const std::string& output) {
  return one_line_errors(path, [&] {
    auto p = with_progress([&](const auto& cb) { return report::build_profile(path, at_s, cb); });
    report::RenderOptions opt{format.default_limit ? format.default_limit : SIZE_MAX, false};
    return emit_document(format.profile(p, opt), output, format.binary);
  });
}

}  // namespace leakscope::cli
