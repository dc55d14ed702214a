// `quiver serve`: run the Flight server on a local data directory.
#pragma once

#include <CLI/CLI.hpp>

namespace quiver {

/// \brief Register the `serve` subcommand on `app`; it runs when selected.
void AddServeCommand(CLI::App& app);

}  // namespace quiver
