// The commands that render a document from captures: `report`, `diff` and `export`. Each
// builds its model (with a progress line on a terminal), renders it with the chosen Renderer
// and writes it (stdout or `-o FILE`); errors are one line and exit status 2.
#pragma once
#include <optional>
#include <string>

#include "report/render.h"

namespace leakscope::cli {

int cmd_report(const std::string& path, const report::Renderer& format, report::RenderOptions opt,
               const std::string& output);
int cmd_diff(const std::string& a, const std::string& b, const report::Renderer& format, report::RenderOptions opt,
             const std::string& output);
int cmd_export(const std::string& path, const report::Renderer& format, std::optional<double> at_s,
               const std::string& output);

}  // namespace leakscope::cli
