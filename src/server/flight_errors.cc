#include "server/flight_errors.h"

#include <arrow/flight/types.h>

#include "common/rejection.h"
#include "index/index.h"
#include "storage/blob_store.h"

namespace quiver {

namespace flight = arrow::flight;

arrow::Status ToFlightError(const arrow::Status& st) {
  if (st.ok()) return st;
  if (IsIndexUnavailable(st) || IsStoreUnavailable(st)) {
    return flight::MakeFlightError(flight::FlightStatusCode::Unavailable, st.message(),
                                   R"({"error":"unavailable"})");
  }
  auto rejection = RejectionOf(st);
  if (!rejection) return st;
  flight::FlightStatusCode code = flight::FlightStatusCode::Failed;
  if (rejection->kind() == RejectionKind::kBusy) code = flight::FlightStatusCode::Unavailable;
  if (rejection->kind() == RejectionKind::kTimedOut) code = flight::FlightStatusCode::TimedOut;
  return arrow::Status(st.code(), st.message(),
                       std::make_shared<flight::FlightStatusDetail>(code, rejection->ToString()));
}

}  // namespace quiver
