// The one place where engine statuses become Flight errors (the contract users see is
// docs/api.md, "Errors"). Codes Arrow maps by itself keep their gRPC status: KeyError →
// NOT_FOUND, Invalid → INVALID_ARGUMENT, AlreadyExists (a version conflict) →
// ALREADY_EXISTS, Cancelled → CANCELLED. An unavailable index or store becomes UNAVAILABLE,
// and a rejection (common/rejection.h: too large, not admitted, busy, timed out) gets its own
// Flight code plus a JSON body in the status's extra_info (the gRPC trailer
// grpc-status-details-bin; pyarrow's FlightError.extra_info), so a client tells them apart
// without parsing messages. The Arrow code is kept, so C++ clients still see e.g.
// CapacityError.
#pragma once

#include <arrow/status.h>

namespace quiver {

/// \brief Map an engine status to the status the Flight transport sends.
arrow::Status ToFlightError(const arrow::Status& status);

}  // namespace quiver
