// Opening the index a node is configured with: the embedded one, or a shared Redis index.
#pragma once

#include <memory>
#include <string>

#include <arrow/result.h>

#include "common/config.h"
#include "index/index.h"

namespace quiver {

/// \brief The index `config.index` names, for node `node`.
arrow::Result<std::shared_ptr<Index>> OpenIndex(const ServerConfig& config,
                                                const std::string& node);

}  // namespace quiver
