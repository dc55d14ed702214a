// The `quiver` command.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/admin_commands.h"
#include "cli/serve_command.h"

int main(int argc, char** argv) {
  // Logs go to stderr so that stdout carries only what scripts parse.
  spdlog::set_default_logger(spdlog::stderr_color_mt("quiver"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"Quiver: an Arrow-native cache for query results and data objects, "
               "served over Arrow Flight."};
  app.set_version_flag("--version", "quiver 0.1.0");
  app.require_subcommand(1);
  quiver::AddServeCommand(app);
  quiver::AddAdminCommands(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
