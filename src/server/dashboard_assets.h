// The dashboard page's files (web/dist), embedded in the binary at build time by
// cmake/EmbedDashboard.cmake, so the HTTP server serves the page with nothing to install.
// Thread-safety: DashboardAssets() is safe to call from any thread; its bodies are constants.
#pragma once

#include <string_view>
#include <vector>

namespace quiver {

/// One file of the dashboard as the HTTP server sends it.
struct DashboardAsset {
  std::string_view path;          ///< request path: "/" (the page) or "/assets/<file>"
  std::string_view content_type;  ///< e.g. "text/javascript; charset=utf-8"
  std::string_view body;          ///< the file's bytes
};

/// \brief Return every dashboard file, sorted by its name under web/dist.
const std::vector<DashboardAsset>& DashboardAssets();

}  // namespace quiver
