// `quiver put | get | query`: data commands against a running server. put streams a
// Parquet, Arrow IPC or CSV file into an object; get and query print a preview of the
// result or write it to a file (docs/cli.md).
#pragma once

#include <CLI/CLI.hpp>

namespace quiver {

/// \brief Register the data subcommands on `app`.
void AddDataCommands(CLI::App& app);

}  // namespace quiver
