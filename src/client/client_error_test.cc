#include "client/client_error.h"

#include <arrow/flight/types.h>
#include <gtest/gtest.h>

namespace quiver {
namespace {

namespace flight = arrow::flight;

// Statuses shaped as Arrow's Flight client hands them over for a Quiver server's errors:
// the server's Arrow code restored from x-arrow-status, the transport's wrapping, and
// the extra_info JSON of the error contract (docs/api.md "Errors").
TEST(ClientErrorTest, ClassifiesTheServersStatuses) {
  EXPECT_EQ(ClassifyError(arrow::Status::KeyError("no object 's/o'")), ErrorKind::kNotFound);
  EXPECT_EQ(ClassifyError(arrow::Status::Invalid("bad key")), ErrorKind::kInvalid);
  EXPECT_EQ(ClassifyError(arrow::Status::AlreadyExists(
                "version conflict: 's/o' is at version 2, not 1")),
            ErrorKind::kVersionConflict);
  EXPECT_EQ(ClassifyError(flight::MakeFlightError(flight::FlightStatusCode::Unavailable,
                                                  "failed to connect to all addresses")),
            ErrorKind::kUnavailable);
  EXPECT_EQ(ClassifyError(flight::MakeFlightError(flight::FlightStatusCode::TimedOut,
                                                  "Deadline Exceeded")),
            ErrorKind::kTimeout);
  EXPECT_EQ(ClassifyError(flight::MakeFlightError(flight::FlightStatusCode::Cancelled,
                                                  "not committed")),
            ErrorKind::kCancelled);
  EXPECT_EQ(ClassifyError(arrow::Status::IOError("internal")), ErrorKind::kOther);
}

TEST(ClientErrorTest, ExtraInfoWinsOverTheCode) {
  auto too_large = arrow::Status::CapacityError("exceeds max_object_bytes")
                       .WithDetail(std::make_shared<flight::FlightStatusDetail>(
                           flight::FlightStatusCode::Internal,
                           R"({"error": "too_large", "limit": 4096})"));
  EXPECT_EQ(ClassifyError(too_large), ErrorKind::kTooLarge);
  auto busy = arrow::Status::CapacityError("resource exhausted: source 'lite' ...")
                  .WithDetail(std::make_shared<flight::FlightStatusDetail>(
                      flight::FlightStatusCode::Unavailable, R"({"error": "busy"})"));
  EXPECT_EQ(ClassifyError(busy), ErrorKind::kUnavailable);
  auto not_admitted = arrow::Status::CapacityError("not admitted: ...")
                          .WithDetail(std::make_shared<flight::FlightStatusDetail>(
                              flight::FlightStatusCode::Failed, R"({"error": "not_admitted"})"));
  EXPECT_EQ(ClassifyError(not_admitted), ErrorKind::kTooLarge);
  // Garbage in extra_info is ignored, not an error of its own.
  auto garbage = arrow::Status::KeyError("no object").WithDetail(
      std::make_shared<flight::FlightStatusDetail>(flight::FlightStatusCode::Internal, "\xff"));
  EXPECT_EQ(ClassifyError(garbage), ErrorKind::kNotFound);
}

TEST(ClientErrorTest, ServersWithoutExtraInfoAreRecognisedByText) {
  EXPECT_EQ(ClassifyError(arrow::Status::CapacityError("resource exhausted: 's/o' exceeds "
                                                       "max_object_bytes")),
            ErrorKind::kTooLarge);
  EXPECT_EQ(ClassifyError(arrow::Status::UnknownError(
                "resource exhausted: source 'x' is running 4 queries and 64 more are queued")),
            ErrorKind::kUnavailable);
}

TEST(ClientErrorTest, MessageDropsTheTransportsWrapping) {
  EXPECT_EQ(ErrorMessage(arrow::Status::KeyError(
                "Flight returned not found error, with message: no object 's/o'")),
            "no object 's/o'");
  EXPECT_EQ(ErrorMessage(arrow::Status::KeyError(
                "no version 9 of object 's/t'. gRPC client debug context: NOT_FOUND:no "
                "version 9. Client context: IOError: Server never sent a data message")),
            "no version 9 of object 's/t'");
  EXPECT_EQ(ErrorMessage(arrow::Status::CapacityError("exceeds max_object_bytes. Detail: "
                                                      "Internal")),
            "exceeds max_object_bytes");
  EXPECT_EQ(ErrorMessage(arrow::Status::Invalid("plain")), "plain");
}

}  // namespace
}  // namespace quiver
