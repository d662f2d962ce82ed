// The commands that render a document from captures: `report`, `diff` and `export`. Each
// builds its model (with a progress line on a terminal), renders it with the chosen Renderer
// and writes it (stdout or `-o FILE`); errors are one line and exit status 2.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "report/render.h"

namespace leakscope::cli {

// `pid`: --pid, one process of a process tree (docs/process-trees.md); none: the capture
// itself, a tree's root merged with its members for report and export.
int cmd_report(const std::string& path, const report::Renderer& format, report::RenderOptions opt,
               const std::string& output, std::optional<uint64_t> pid = {});
int cmd_diff(const std::string& a, const std::string& b, const report::Renderer& format, report::RenderOptions opt,
             const std::string& output, std::optional<uint64_t> pid = {});
int cmd_export(const std::string& path, const report::Renderer& format, std::optional<double> at_s,
               const std::string& output, std::optional<uint64_t> pid = {});

}  // namespace leakscope::cli
