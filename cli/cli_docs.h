// The bash completion and the man page of leakscope, written from the CLI11 definition itself
// (every subcommand, option, choice and example), so they cannot drift from the code. Asked
// for by the hidden first arguments `--completion bash` and `--man` (the build runs them;
// README "Install").
#pragma once
#include <string>

namespace CLI {
class App;
}

namespace leakscope::cli {

// When argv asks for a completion script or the man page, writes it to stdout, sets *status
// and returns true; otherwise returns false and leaves argv to the parser.
bool cli_docs(CLI::App& app, int argc, char** argv, const std::string& version, int* status);

}  // namespace leakscope::cli
