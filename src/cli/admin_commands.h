// `quiver ls | stats | shrink | invalidate | config`: admin commands against a running
// server, over the Flight management actions.
#pragma once

#include <CLI/CLI.hpp>

namespace quiver {

/// \brief Register the admin subcommands on `app`.
void AddAdminCommands(CLI::App& app);

}  // namespace quiver
