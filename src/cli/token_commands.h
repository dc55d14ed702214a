// `quiver token add|list|revoke`: manage the tokens file of a server with `auth.mode:
// tokens` (docs/security.md). A running server picks changes up on SIGHUP.
#pragma once

#include <CLI/CLI.hpp>

namespace quiver {

void AddTokenCommands(CLI::App& app);

}  // namespace quiver
