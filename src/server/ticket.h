// Object tickets: what a DoGet ticket for an object says.
//
// Spellings (docs/api.md):
//   s/o                      latest version
//   s/o@3                    version 3, if still kept
//   {"key": "s/o", "version": 3, "if_none_match": 2}
//                            JSON form; "version" and "if_none_match" optional. With
//                            if_none_match = N, a read that would return version N answers
//                            "not modified" instead of sending the data again.
//   {"key": "s/o", "since": 2}
//                            Deltas: if the version read is a patch of version 2's own chain,
//                            only the rows appended after version 2 (object_patch.h); else
//                            the whole object. Version 2 itself answers "not modified".
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <arrow/result.h>

#include "common/key.h"

namespace quiver {

struct ObjectTicket {
  ObjectKey key;
  std::optional<uint64_t> version;
  std::optional<uint64_t> if_none_match;
  std::optional<uint64_t> since;

  /// \brief Parse a ticket; the error names the bad part.
  static arrow::Result<ObjectTicket> Parse(const std::string& ticket);
};

/// \brief Parse a positive version number ("3"); the error names `what`.
arrow::Result<uint64_t> ParseVersion(const std::string& text, const char* what);

}  // namespace quiver
