#include "server/entries_table.h"

#include <arrow/builder.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>

#include "cache/derived_cache.h"

namespace quiver {

arrow::Result<std::shared_ptr<arrow::Table>> EntriesTable(const std::vector<EntryInfo>& entries) {
  auto ts = arrow::timestamp(arrow::TimeUnit::MILLI, "UTC");
  arrow::StringBuilder key, kind, source;
  arrow::UInt64Builder version, accesses;
  arrow::Int64Builder bytes, rows;
  arrow::DoubleBuilder cost, score;
  arrow::TimestampBuilder created(ts, arrow::default_memory_pool()),
      last_access(ts, arrow::default_memory_pool()), expires(ts, arrow::default_memory_pool());
  arrow::ListBuilder depends_on(arrow::default_memory_pool(),
                                std::make_shared<arrow::StringBuilder>());
  arrow::ListBuilder tags(arrow::default_memory_pool(), std::make_shared<arrow::StringBuilder>());
  arrow::BooleanBuilder in_memory;
  auto* dep_values = static_cast<arrow::StringBuilder*>(depends_on.value_builder());
  auto* tag_values = static_cast<arrow::StringBuilder*>(tags.value_builder());

  for (const auto& e : entries) {
    const auto& m = e.latest;
    ARROW_RETURN_NOT_OK(key.Append(m.key));
    ARROW_RETURN_NOT_OK(kind.Append(IsDerivedEntry(m) ? "derived" : m.is_query() ? "query" : "object"));
    ARROW_RETURN_NOT_OK(version.Append(m.version));
    ARROW_RETURN_NOT_OK(bytes.Append(e.usage.bytes > 0 ? e.usage.bytes : m.bytes));
    ARROW_RETURN_NOT_OK(rows.Append(m.rows));
    ARROW_RETURN_NOT_OK(cost.Append(m.cost_ms / 1000.0));
    ARROW_RETURN_NOT_OK(created.Append(m.created_ms));
    ARROW_RETURN_NOT_OK(last_access.Append(e.usage.last_access_ms > 0 ? e.usage.last_access_ms
                                                                      : m.created_ms));
    ARROW_RETURN_NOT_OK(accesses.Append(e.usage.accesses));
    ARROW_RETURN_NOT_OK(score.Append(e.usage.score));
    ARROW_RETURN_NOT_OK(m.expires_ms ? expires.Append(m.expires_ms) : expires.AppendNull());
    ARROW_RETURN_NOT_OK(m.source.empty() ? source.AppendNull() : source.Append(m.source));
    ARROW_RETURN_NOT_OK(depends_on.Append());
    for (const auto& d : m.depends_on) ARROW_RETURN_NOT_OK(dep_values->Append(d));
    ARROW_RETURN_NOT_OK(tags.Append());
    for (const auto& t : m.tags) ARROW_RETURN_NOT_OK(tag_values->Append(t));
    ARROW_RETURN_NOT_OK(in_memory.Append(e.in_memory));
  }
  auto schema = arrow::schema({
      arrow::field("key", arrow::utf8(), false),
      arrow::field("kind", arrow::utf8(), false),
      arrow::field("version", arrow::uint64(), false),
      arrow::field("bytes", arrow::int64(), false),
      arrow::field("rows", arrow::int64(), false),
      arrow::field("cost_s", arrow::float64(), false),
      arrow::field("created", ts, false),
      arrow::field("last_access", ts, false),
      arrow::field("accesses", arrow::uint64(), false),
      arrow::field("score", arrow::float64(), false),
      arrow::field("expires", ts),
      arrow::field("source", arrow::utf8()),
      arrow::field("depends_on", arrow::list(arrow::utf8()), false),
      arrow::field("tags", arrow::list(arrow::utf8()), false),
      arrow::field("in_memory", arrow::boolean(), false),
  });
  std::vector<std::shared_ptr<arrow::Array>> columns(15);
  ARROW_RETURN_NOT_OK(key.Finish(&columns[0]));
  ARROW_RETURN_NOT_OK(kind.Finish(&columns[1]));
  ARROW_RETURN_NOT_OK(version.Finish(&columns[2]));
  ARROW_RETURN_NOT_OK(bytes.Finish(&columns[3]));
  ARROW_RETURN_NOT_OK(rows.Finish(&columns[4]));
  ARROW_RETURN_NOT_OK(cost.Finish(&columns[5]));
  ARROW_RETURN_NOT_OK(created.Finish(&columns[6]));
  ARROW_RETURN_NOT_OK(last_access.Finish(&columns[7]));
  ARROW_RETURN_NOT_OK(accesses.Finish(&columns[8]));
  ARROW_RETURN_NOT_OK(score.Finish(&columns[9]));
  ARROW_RETURN_NOT_OK(expires.Finish(&columns[10]));
  ARROW_RETURN_NOT_OK(source.Finish(&columns[11]));
  ARROW_RETURN_NOT_OK(depends_on.Finish(&columns[12]));
  ARROW_RETURN_NOT_OK(tags.Finish(&columns[13]));
  ARROW_RETURN_NOT_OK(in_memory.Finish(&columns[14]));
  return arrow::Table::Make(schema, columns);
}

arrow::Result<std::shared_ptr<arrow::Buffer>> TableToIpc(const arrow::Table& table) {
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeStreamWriter(sink, table.schema()));
  ARROW_RETURN_NOT_OK(writer->WriteTable(table));
  ARROW_RETURN_NOT_OK(writer->Close());
  return sink->Finish();
}

}  // namespace quiver
