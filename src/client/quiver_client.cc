#include "client/quiver_client.h"

#include <fstream>
#include <sstream>

#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>

namespace quiver {

namespace flight = arrow::flight;
using nlohmann::json;

namespace {

std::vector<std::string> Segments(const std::string& key) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    out.push_back(key.substr(start, slash - start));
    if (slash == std::string::npos) return out;
    start = slash + 1;
  }
}

arrow::Result<ObjectRef> ParseObjectRef(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("key") || !j["key"].is_string() ||
      !j.contains("version") || !j["version"].is_number_unsigned()) {
    return arrow::Status::IOError("the server's PutResult is not an ObjectRef: ", text);
  }
  ObjectRef ref;
  ref.endpoint = j.value("endpoint", "");
  ref.key = j["key"].get<std::string>();
  ref.version = j["version"].get<uint64_t>();
  return ref;
}

}  // namespace

std::string QueryRequest::ToJson() const {
  json j = {{"source", source}, {"sql", sql}};
  if (!params.empty()) j["params"] = params;
  if (ttl_s) j["ttl_s"] = *ttl_s;
  return j.dump();
}

QuiverClient::QuiverClient(std::unique_ptr<flight::FlightClient> client, ClientOptions options)
    : client_(std::move(client)), options_(options) {}

arrow::Result<std::unique_ptr<QuiverClient>> QuiverClient::Connect(const std::string& location,
                                                                   ClientOptions options) {
  auto parsed = flight::Location::Parse(location);
  if (!parsed.ok()) {
    return arrow::Status::Invalid("bad server address '", location,
                                  "' (expected grpc://HOST:PORT): ", parsed.status().message());
  }
  flight::FlightClientOptions client_options = flight::FlightClientOptions::Defaults();
  if (!options.tls_ca_file.empty()) {
    std::ifstream in(options.tls_ca_file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      return arrow::Status::IOError("cannot read the TLS CA file '", options.tls_ca_file, "'");
    }
    client_options.tls_root_certs = pem.str();
  }
  ARROW_ASSIGN_OR_RAISE(auto client, flight::FlightClient::Connect(*parsed, client_options));
  return std::unique_ptr<QuiverClient>(new QuiverClient(std::move(client), options));
}

flight::FlightCallOptions QuiverClient::CallOptions() const {
  flight::FlightCallOptions call;
  if (options_.timeout_s > 0) call.timeout = flight::TimeoutDuration{options_.timeout_s};
  if (!options_.token.empty()) call.headers.emplace_back("authorization", "Bearer " + options_.token);
  return call;
}

arrow::Result<std::string> QuiverClient::Action(const std::string& type, const std::string& body) {
  flight::Action action{type, arrow::Buffer::FromString(body)};
  ARROW_ASSIGN_OR_RAISE(auto results, client_->DoAction(CallOptions(), action));
  ARROW_ASSIGN_OR_RAISE(auto result, results->Next());
  if (!result) return arrow::Status::IOError("action '", type, "' returned no result");
  ARROW_RETURN_NOT_OK(results->Drain());
  return result->body->ToString();
}

arrow::Result<std::shared_ptr<arrow::Table>> QuiverClient::Entries(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto ipc, Action("entries", json{{"prefix", prefix}}.dump()));
  auto buffer = arrow::Buffer::FromString(std::move(ipc));
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(
                                         std::make_shared<arrow::io::BufferReader>(buffer)));
  return reader->ToTable();
}

arrow::Result<ObjectRef> QuiverClient::Put(const std::string& key,
                                           arrow::RecordBatchReader* batches,
                                           const PutOptions& options,
                                           const ProgressFn& progress, bool* input_failed) {
  json meta = json::object();
  if (options.if_version) meta["if_version"] = *options.if_version;
  if (!options.depends_on.empty()) meta["depends_on"] = options.depends_on;
  if (!options.tags.empty()) meta["tags"] = options.tags;

  ARROW_ASSIGN_OR_RAISE(auto put, client_->DoPut(CallOptions(),
                                                 flight::FlightDescriptor::Path(Segments(key)),
                                                 batches->schema()));
  int64_t rows = 0, bytes = 0;
  // Writes fail when the server ends the call early; its status then comes from Close().
  auto sent = [&]() -> arrow::Status {
    // Options ride on a metadata-only first message: the schema message's app_metadata
    // does not reach the server's handler.
    if (!meta.empty()) {
      ARROW_RETURN_NOT_OK(put.writer->WriteMetadata(arrow::Buffer::FromString(meta.dump())));
    }
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      auto read = batches->ReadNext(&batch);
      if (!read.ok()) {
        // Ending the stream would commit what was sent: abort the put instead. The server
        // then ends the call with CANCELLED, which is expected and not reported.
        if (input_failed) *input_failed = true;
        (void)put.writer->WriteMetadata(
            arrow::Buffer::FromString(json{{"abort", read.message()}}.dump()));
        (void)put.writer->Close();
        return read;
      }
      if (!batch) break;
      ARROW_RETURN_NOT_OK(put.writer->WriteRecordBatch(*batch));
      int64_t size = 0;
      ARROW_RETURN_NOT_OK(arrow::ipc::GetRecordBatchSize(*batch, &size));
      rows += batch->num_rows();
      bytes += size;
      if (progress) progress(rows, bytes);
    }
    return put.writer->DoneWriting();
  }();
  if (input_failed && *input_failed) return sent;  // aborted: the reader's error
  std::shared_ptr<arrow::Buffer> result;
  if (sent.ok()) sent = put.reader->ReadMetadata(&result);
  auto closed = put.writer->Close();
  ARROW_RETURN_NOT_OK(closed);  // the server's status explains a failed write
  ARROW_RETURN_NOT_OK(sent);
  if (!result) return arrow::Status::IOError("the server sent no PutResult for '", key, "'");
  return ParseObjectRef(result->ToString());
}

arrow::Result<std::shared_ptr<DataStream>> QuiverClient::Get(const std::string& key,
                                                             std::optional<uint64_t> version,
                                                             ProgressFn progress) {
  std::string ticket = version ? key + "@" + std::to_string(*version) : key;
  ARROW_ASSIGN_OR_RAISE(auto reader, client_->DoGet(CallOptions(), flight::Ticket{ticket}));
  return DataStream::Open(std::move(reader), std::move(progress));
}

arrow::Result<std::shared_ptr<DataStream>> QuiverClient::Query(const QueryRequest& request,
                                                               ProgressFn progress) {
  ARROW_ASSIGN_OR_RAISE(auto reader,
                        client_->DoGet(CallOptions(), flight::Ticket{request.ToJson()}));
  return DataStream::Open(std::move(reader), std::move(progress));
}

}  // namespace quiver
