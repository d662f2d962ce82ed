// Where a rendered document goes: stdout, or a new file (`-o FILE`: O_EXCL, mode 0600, never
// through a symbolic link). Binary documents are never written to a terminal.
#pragma once
#include <string>

namespace leakscope::cli {

// Writes `doc`; returns 0, or 2 after one line on stderr saying why not.
int emit_document(const std::string& doc, const std::string& output, bool binary);

}  // namespace leakscope::cli
