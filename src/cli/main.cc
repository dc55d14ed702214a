// The `quiver` command.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/admin_commands.h"
#include "cli/data_commands.h"
#include "cli/exit_codes.h"
#include "cli/serve_command.h"
#include "cli/token_commands.h"
#include "storage/s3_blob_store.h"

int main(int argc, char** argv) {
  // Logs go to stderr so that stdout carries only what scripts parse.
  spdlog::set_default_logger(spdlog::stderr_color_mt("quiver"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"Quiver: an Arrow-native cache for query results and data objects, "
               "served over Arrow Flight."};
  app.set_version_flag("--version", "quiver 0.1.0");
  app.require_subcommand(1);
  quiver::AddServeCommand(app);
  quiver::AddDataCommands(app);
  quiver::AddAdminCommands(app);
  quiver::AddTokenCommands(app);
  int rc = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    rc = app.exit(e);
    // A command's own failure carries its exit code (RuntimeError); every other parse
    // error is a usage error (docs/cli.md "Exit codes").
    if (rc != 0 && e.get_name() != "RuntimeError") rc = quiver::kExitUsage;
  }
  // Every S3 store is gone by now (they live inside the commands).
  quiver::FinalizeS3IfInitialized();
  return rc;
}
