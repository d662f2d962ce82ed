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
}  // namespace

// `format` is one of the renderers (the option's choices come from that table).
int cmd_report(const std::string& path, const report::Renderer& format, report::RenderOptions opt,
               const std::string& output) {
  try {
    auto r = with_progress(
        [&](const auto& cb) { return report::build_report(path, report::build_options(format), cb); });
    if (!opt.limit) opt.limit = format.default_limit;
    return emit_document(format.report(r, opt), output, format.binary);
  } catch (const capture::CaptureError& e) {
    fprintf(stderr, "leakscope: %s\n", e.what());
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    fprintf(stderr, "leakscope: out of memory reading %s\n", path.c_str());
    return kExitUsage;
  }
}

int cmd_diff(const std::string& a, const std::string& b, const report::Renderer& format,
             report::RenderOptions opt, const std::string& output) {
  try {
    auto d = with_progress([&](const auto& cb) { return report::build_diff(a, b, cb); });
    if (!opt.limit) opt.limit = format.default_limit ? format.default_limit : SIZE_MAX;  // 0: no limit (pprof)
    return emit_document(format.diff(d, opt), output, format.binary);
  } catch (const report::DiffError& e) {
    fprintf(stderr, "leakscope: %s\n", e.what());
    return kExitUsage;
  } catch (const capture::CaptureError& e) {
    fprintf(stderr, "leakscope: %s\n", e.what());
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    fprintf(stderr, "leakscope: out of memory reading %s and %s\n", a.c_str(), b.c_str());
    return kExitUsage;
  }
}

// `export`: the profile at one moment, in a format other tools read (docs/exports.md).
int cmd_export(const std::string& path, const report::Renderer& format, std::optional<double> at_s,
               const std::string& output) {
  try {
    auto p = with_progress([&](const auto& cb) { return report::build_profile(path, at_s, cb); });
    report::RenderOptions opt{format.default_limit ? format.default_limit : SIZE_MAX, false};
    return emit_document(format.profile(p, opt), output, format.binary);
  } catch (const std::invalid_argument& e) {
    fprintf(stderr, "leakscope: %s\n", e.what());
    return kExitUsage;
  } catch (const capture::CaptureError& e) {
    fprintf(stderr, "leakscope: %s\n", e.what());
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    fprintf(stderr, "leakscope: out of memory reading %s\n", path.c_str());
    return kExitUsage;
  }
}

}  // namespace leakscope::cli
