// The filter syntax of views ("price > 10 and region in ('eu', 'us')"), over a schema with
// a column of each kind the grammar compares.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <arrow/api.h>

#include "exec/filter_expr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto schema = arrow::schema({
      arrow::field("price", arrow::float64()), arrow::field("n", arrow::int64()),
      arrow::field("region", arrow::utf8()), arrow::field("ok", arrow::boolean()),
      arrow::field("day", arrow::date32()), arrow::field("at", arrow::timestamp(arrow::TimeUnit::MICRO)),
      arrow::field("small", arrow::int8()), arrow::field("raw", arrow::binary())});
  (void)quiver::ParseFilter(std::string_view(reinterpret_cast<const char*>(data), size), *schema);
  return 0;
}
