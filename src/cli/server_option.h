// The server a client command talks to: --server, else $QUIVER_SERVER, else
// grpc://127.0.0.1:8815 — the same for the admin and the data commands.
//
// Thread-safety: reads the environment.
#pragma once

#include <string>

namespace quiver {

inline constexpr const char* kServerOptionHelp =
    "Quiver server [default: $QUIVER_SERVER or grpc://127.0.0.1:8815]";

/// \brief `flag` if given, else $QUIVER_SERVER, else grpc://127.0.0.1:8815.
std::string ServerLocation(const std::string& flag);

}  // namespace quiver
