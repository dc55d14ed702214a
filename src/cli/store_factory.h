// Opening the stores a node is configured with: where entries are kept (the local data dir,
// or an S3 bucket) and, with S3, the node-local disk tier in the data dir; local blobs
// encrypted at rest when a key is configured.
#pragma once

#include <memory>
#include <string>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>

#include "common/config.h"
#include "storage/blob_store.h"
#include "storage/local_blob_store.h"

namespace quiver {

struct NodeStores {
  /// Where entries are kept: the data dir, or S3.
  std::shared_ptr<BlobStore> store;
  /// With S3: the node-local disk tier's store (in the data dir); else null.
  std::shared_ptr<BlobStore> disk;
  /// The data dir itself (locked for this process; its filesystem sizes the defaults).
  std::shared_ptr<LocalBlobStore> data_dir;
};

/// \brief The filesystem of s3:// artifacts: the connection and credentials of the config's
/// `s3` settings (credentials: as for the store, else the AWS SDK's default chain).
arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> OpenArtifactS3(const ServerConfig& config);

/// \brief The stores `config` names, for node `node`.
arrow::Result<NodeStores> OpenStores(const ServerConfig& config, const std::string& node);

}  // namespace quiver
