#include "common/rejection.h"

#include <string_view>

#include <nlohmann/json.hpp>

namespace quiver {

namespace {
constexpr char kTypeId[] = "quiver::RejectionDetail";

const char* ErrorName(RejectionKind kind) {
  switch (kind) {
    case RejectionKind::kTooLarge:
      return "too_large";
    case RejectionKind::kNotAdmitted:
      return "not_admitted";
    case RejectionKind::kBusy:
      return "busy";
    case RejectionKind::kTimedOut:
      return "timed_out";
  }
  return "rejected";
}
}  // namespace

const char* RejectionDetail::type_id() const { return kTypeId; }

std::string RejectionDetail::ToString() const {
  nlohmann::json j = {{"error", ErrorName(kind_)}};
  if (!setting_.empty()) j["setting"] = setting_;
  if (limit_ >= 0) j["limit"] = limit_;
  return j.dump();
}

arrow::Status Reject(arrow::Status status, RejectionKind kind, std::string setting,
                     int64_t limit) {
  return status.WithDetail(std::make_shared<RejectionDetail>(kind, std::move(setting), limit));
}

std::shared_ptr<RejectionDetail> RejectionOf(const arrow::Status& status) {
  const auto& detail = status.detail();
  if (!detail || detail->type_id() != std::string_view(kTypeId)) return nullptr;
  return std::static_pointer_cast<RejectionDetail>(detail);
}

}  // namespace quiver
