#include "client/quiver_client.h"

#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <nlohmann/json.hpp>

namespace quiver {

arrow::Result<std::unique_ptr<QuiverClient>> QuiverClient::Connect(const std::string& location) {
  auto parsed = arrow::flight::Location::Parse(location);
  if (!parsed.ok()) {
    return arrow::Status::Invalid("bad server address '", location,
                                  "' (expected grpc://HOST:PORT): ", parsed.status().message());
  }
  ARROW_ASSIGN_OR_RAISE(auto client, arrow::flight::FlightClient::Connect(*parsed));
  return std::unique_ptr<QuiverClient>(new QuiverClient(std::move(client)));
}

arrow::Result<std::string> QuiverClient::Action(const std::string& type, const std::string& body) {
  arrow::flight::Action action{type, arrow::Buffer::FromString(body)};
  ARROW_ASSIGN_OR_RAISE(auto results, client_->DoAction(action));
  ARROW_ASSIGN_OR_RAISE(auto result, results->Next());
  if (!result) return arrow::Status::IOError("action '", type, "' returned no result");
  ARROW_RETURN_NOT_OK(results->Drain());
  return result->body->ToString();
}

arrow::Result<std::shared_ptr<arrow::Table>> QuiverClient::Entries(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto ipc, Action("entries", nlohmann::json{{"prefix", prefix}}.dump()));
  auto buffer = arrow::Buffer::FromString(std::move(ipc));
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(
                                         std::make_shared<arrow::io::BufferReader>(buffer)));
  return reader->ToTable();
}

}  // namespace quiver
