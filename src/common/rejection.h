// A rejection: why the cache declined a request that was well formed — too large, no room,
// too busy, too slow. Carried as an arrow::StatusDetail on the failing Status so that the
// layers below the server need not know about wire codes, and the server (the only place
// that maps statuses to Flight errors) can give each rejection its own documented code and a
// machine-readable body. See docs/api.md, "Errors".
//
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/status.h>

namespace quiver {

enum class RejectionKind {
  kTooLarge,     ///< the request exceeds a size limit (`setting`, `limit` bytes)
  kNotAdmitted,  ///< no room in the budget without evicting protected entries
  kBusy,         ///< a bounded queue of work is full; retry later
  kTimedOut,     ///< the work did not finish within its time limit
};

class RejectionDetail : public arrow::StatusDetail {
 public:
  RejectionDetail(RejectionKind kind, std::string setting, int64_t limit)
      : kind_(kind), setting_(std::move(setting)), limit_(limit) {}

  const char* type_id() const override;
  /// \brief The machine-readable body: {"error": "too_large", "setting": ..., "limit": ...}.
  std::string ToString() const override;

  RejectionKind kind() const { return kind_; }
  const std::string& setting() const { return setting_; }
  int64_t limit() const { return limit_; }

 private:
  RejectionKind kind_;
  std::string setting_;  ///< the configuration setting whose limit was hit, if any
  int64_t limit_;        ///< that setting's value, -1 when there is none
};

/// \brief Return `status` (an error) marked as a rejection of `kind`.
/// `setting`/`limit` name the limit that was hit, when there is one.
arrow::Status Reject(arrow::Status status, RejectionKind kind, std::string setting = {},
                     int64_t limit = -1);

/// \brief The rejection carried by `status`, or null.
std::shared_ptr<RejectionDetail> RejectionOf(const arrow::Status& status);

}  // namespace quiver
