// Artifact requests on the wire: the JSON of a CMD descriptor, a DoGet ticket or the body of
// the `artifact-fetch` action.
//
//   {"artifact": "s3://bucket/path.parquet", "format": "parquet", "ttl_s": 600}
//
// "artifact" is required; "format" defaults to the URL's extension, "ttl_s" to
// artifacts.default_ttl_s. Unknown fields are refused by name.
#pragma once

#include <string>

#include <arrow/result.h>

#include "cache/artifact_cache.h"

namespace quiver {

/// \brief True if `text` is an artifact request (a JSON object with an "artifact" field).
bool LooksLikeArtifact(const std::string& text);

/// \brief Parse an artifact request; the error names the bad field.
arrow::Result<ArtifactRequest> ParseArtifactRequest(const std::string& text);

/// \brief The `artifact-fetch` action's result: {"key", "cache", "url", "format", "rows",
/// "bytes", "created_ms", "expires_ms", "size", "mtime_ms", and "etag" when known}.
std::string ArtifactFetchedJson(const ArtifactFetched& fetched);

}  // namespace quiver
