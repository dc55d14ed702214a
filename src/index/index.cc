#include "index/index.h"

#include <memory>

namespace quiver {

namespace {

class UnavailableDetail final : public arrow::StatusDetail {
 public:
  const char* type_id() const override { return "quiver::index::unavailable"; }
  std::string ToString() const override { return "index unavailable"; }
};

}  // namespace

arrow::Status IndexUnavailable(std::string message) {
  return arrow::Status(arrow::StatusCode::IOError, std::move(message),
                       std::make_shared<UnavailableDetail>());
}

bool IsIndexUnavailable(const arrow::Status& status) {
  return !status.ok() && status.detail() &&
         std::string(status.detail()->type_id()) == "quiver::index::unavailable";
}

}  // namespace quiver
