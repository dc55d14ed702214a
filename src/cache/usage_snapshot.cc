#include "cache/usage_snapshot.h"

#include <charconv>
#include <cmath>
#include <map>
#include <string_view>
#include <string>

#include <arrow/api.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/key_value_metadata.h>

namespace quiver {

namespace {

constexpr const char* kTickKey = "quiver.usage.tick";
constexpr const char* kSavedKey = "quiver.usage.saved_ms";
constexpr const char* kVersionKey = "quiver.usage.version";
constexpr std::string_view kCounterPrefix = "quiver.counter.";

std::shared_ptr<arrow::Schema> UsageSchema(uint64_t tick, int64_t saved_ms,
                                           const std::map<std::string, int64_t>& counters) {
  std::vector<std::string> keys = {kVersionKey, kTickKey, kSavedKey};
  std::vector<std::string> values = {"1", std::to_string(tick), std::to_string(saved_ms)};
  for (const auto& [name, value] : counters) {
    keys.push_back(std::string(kCounterPrefix) + name);
    values.push_back(std::to_string(value));
  }
  return arrow::schema(
      {arrow::field("key", arrow::utf8(), false),
       arrow::field("accesses", arrow::uint64(), false),
       arrow::field("log_weight", arrow::float64(), false),
       arrow::field("last_tick", arrow::uint64(), false),
       arrow::field("last_access_ms", arrow::int64(), false)},
      arrow::key_value_metadata(keys, values));
}

template <typename ArrayType>
arrow::Result<std::shared_ptr<ArrayType>> Column(const arrow::RecordBatch& batch,
                                                 const std::string& name,
                                                 const arrow::DataType& type) {
  auto column = batch.GetColumnByName(name);
  if (!column) return arrow::Status::Invalid("usage snapshot: no column '", name, "'");
  if (!column->type()->Equals(type) || column->null_count() > 0) {
    return arrow::Status::Invalid("usage snapshot: column '", name, "' is not a non-null ",
                                  type.ToString());
  }
  return std::static_pointer_cast<ArrayType>(column);
}

template <typename T>
arrow::Result<T> MetadataNumber(const arrow::KeyValueMetadata& metadata, const char* key) {
  auto text = metadata.Get(key);
  if (!text.ok()) return arrow::Status::Invalid("usage snapshot: no '", key, "' in metadata");
  T value{};
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) {
    return arrow::Status::Invalid("usage snapshot: '", key, "' is not a number: ", *text);
  }
  return value;
}

}  // namespace

arrow::Status WriteUsage(const UsageSnapshot& snapshot, int64_t saved_ms,
                         arrow::io::OutputStream* sink) {
  arrow::StringBuilder keys;
  arrow::UInt64Builder accesses, last_ticks;
  arrow::DoubleBuilder log_weights;
  arrow::Int64Builder last_access;
  for (const auto& r : snapshot.records) {
    ARROW_RETURN_NOT_OK(keys.Append(r.key));
    ARROW_RETURN_NOT_OK(accesses.Append(r.history.accesses));
    ARROW_RETURN_NOT_OK(log_weights.Append(r.history.log_weight));
    ARROW_RETURN_NOT_OK(last_ticks.Append(r.history.last_tick));
    ARROW_RETURN_NOT_OK(last_access.Append(r.last_access_ms));
  }
  std::vector<std::shared_ptr<arrow::Array>> columns(5);
  ARROW_RETURN_NOT_OK(keys.Finish(&columns[0]));
  ARROW_RETURN_NOT_OK(accesses.Finish(&columns[1]));
  ARROW_RETURN_NOT_OK(log_weights.Finish(&columns[2]));
  ARROW_RETURN_NOT_OK(last_ticks.Finish(&columns[3]));
  ARROW_RETURN_NOT_OK(last_access.Finish(&columns[4]));
  auto schema = UsageSchema(snapshot.tick, saved_ms, snapshot.counters);
  auto batch = arrow::RecordBatch::Make(schema, columns[0]->length(), columns);

  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeFileWriter(sink, schema));
  ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
  return writer->Close();
}

arrow::Result<UsageSnapshot> DecodeUsage(std::shared_ptr<arrow::io::RandomAccessFile> file,
                                         int64_t* saved_ms) {
  auto opened = arrow::ipc::RecordBatchFileReader::Open(file);
  if (!opened.ok()) {
    return arrow::Status::Invalid("usage snapshot: not an Arrow IPC file: ",
                                  opened.status().message());
  }
  auto reader = *opened;
  auto metadata = reader->schema()->metadata();
  if (!metadata || metadata->Get(kVersionKey).ValueOr("") != "1") {
    return arrow::Status::Invalid("usage snapshot: unknown format version");
  }
  UsageSnapshot out;
  ARROW_ASSIGN_OR_RAISE(out.tick, MetadataNumber<uint64_t>(*metadata, kTickKey));
  ARROW_ASSIGN_OR_RAISE(int64_t saved, MetadataNumber<int64_t>(*metadata, kSavedKey));
  if (saved_ms) *saved_ms = saved;
  for (int64_t i = 0; i < metadata->size(); ++i) {
    const std::string& key = metadata->key(i);
    if (key.compare(0, kCounterPrefix.size(), kCounterPrefix) != 0) continue;
    ARROW_ASSIGN_OR_RAISE(out.counters[key.substr(kCounterPrefix.size())],
                          MetadataNumber<int64_t>(*metadata, key.c_str()));
  }
  for (int i = 0; i < reader->num_record_batches(); ++i) {
    ARROW_ASSIGN_OR_RAISE(auto batch, reader->ReadRecordBatch(i));
    ARROW_RETURN_NOT_OK(batch->ValidateFull());
    ARROW_ASSIGN_OR_RAISE(auto keys, Column<arrow::StringArray>(*batch, "key", *arrow::utf8()));
    ARROW_ASSIGN_OR_RAISE(auto accesses,
                          Column<arrow::UInt64Array>(*batch, "accesses", *arrow::uint64()));
    ARROW_ASSIGN_OR_RAISE(auto log_weights,
                          Column<arrow::DoubleArray>(*batch, "log_weight", *arrow::float64()));
    ARROW_ASSIGN_OR_RAISE(auto last_ticks,
                          Column<arrow::UInt64Array>(*batch, "last_tick", *arrow::uint64()));
    ARROW_ASSIGN_OR_RAISE(auto last_access,
                          Column<arrow::Int64Array>(*batch, "last_access_ms", *arrow::int64()));
    for (int64_t row = 0; row < batch->num_rows(); ++row) {
      UsageRecord r;
      r.key = keys->GetString(row);
      r.history.accesses = accesses->Value(row);
      r.history.log_weight = log_weights->Value(row);
      r.history.last_tick = last_ticks->Value(row);
      r.last_access_ms = last_access->Value(row);
      if (std::isnan(r.history.log_weight) || r.history.log_weight == HUGE_VAL) {
        return arrow::Status::Invalid("usage snapshot: '", r.key, "' has log_weight ",
                                      r.history.log_weight);
      }
      if (r.history.last_tick > out.tick) {
        return arrow::Status::Invalid("usage snapshot: '", r.key, "' was accessed at tick ",
                                      r.history.last_tick, ", after the snapshot's ", out.tick);
      }
      out.records.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace quiver
