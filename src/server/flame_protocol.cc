#include "server/flame_protocol.h"

#include <charconv>

#include <arrow/array/builder_binary.h>
#include <arrow/array/builder_primitive.h>
#include <arrow/buffer.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <arrow/util/key_value_metadata.h>
#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "common/key.h"

namespace quiver::flame {

namespace {

constexpr const char* kEncodedPrefix = "..";

}  // namespace

std::string FlameKey::ToString() const {
  std::string out = app + "/" + session;
  if (object) out += "/" + *object;
  return out;
}

arrow::Result<FlameKey> ParseFlameKey(std::string_view text) {
  auto parts = SplitKeyPath(text);
  if (parts.size() != 2 && parts.size() != 3) {
    return arrow::Status::Invalid("invalid Flame key '", text,
                                  "': expected '<app>/<ssn>' or '<app>/<ssn>/<uuid>'");
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    auto part = parts[i];
    if (part.empty() || part.find("..") != std::string_view::npos ||
        part.find('\\') != std::string_view::npos) {
      return arrow::Status::Invalid("invalid Flame key component '", part, "' in '", text, "'");
    }
    if (part == "*" && i != 1) {
      return arrow::Status::Invalid("invalid Flame key '", text,
                                    "': wildcard '*' only allowed for session_id");
    }
  }
  FlameKey key{std::string(parts[0]), std::string(parts[1]), std::nullopt};
  if (parts.size() == 3) {
    if (key.all_sessions()) {
      return arrow::Status::Invalid("invalid Flame key '", text,
                                    "': wildcard session '*' cannot have object_id");
    }
    key.object = std::string(parts[2]);
  }
  return key;
}

arrow::Result<std::string> ToQuiverSegment(std::string_view part) {
  bool plain = part.size() <= kMaxSegmentLength;
  for (char c : part) plain = plain && IsKeyChar(c);
  if (plain) return std::string(part);
  std::string out = kEncodedPrefix + HexEncode(reinterpret_cast<const unsigned char*>(part.data()),
                                               part.size());
  if (out.size() > kMaxSegmentLength) {
    return arrow::Status::Invalid("Flame key part '", part, "' is too long: with characters "
                                  "outside [A-Za-z0-9._-] it may have at most ",
                                  (kMaxSegmentLength - 2) / 2, " bytes");
  }
  return out;
}

std::string FromQuiverSegment(const std::string& segment) {
  if (segment.size() < 2 || segment.compare(0, 2, kEncodedPrefix) != 0) return segment;
  std::string out;
  for (size_t i = 2; i + 1 < segment.size(); i += 2) {
    const int hi = HexDigitValue(segment[i]), lo = HexDigitValue(segment[i + 1]);
    if (hi < 0 || lo < 0) return segment;  // not one of ours: shown as it is
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

arrow::Result<ObjectKey> ToQuiverKey(const FlameKey& key) {
  if (!key.object) {
    return arrow::Status::Invalid("'", key.ToString(), "' is a key prefix, not an object key");
  }
  std::vector<std::string> segments;
  for (const std::string* part : {&key.app, &key.session, &*key.object}) {
    ARROW_ASSIGN_OR_RAISE(auto segment, ToQuiverSegment(*part));
    segments.push_back(std::move(segment));
  }
  return ObjectKey::FromSegments(segments);
}

std::optional<FlameKey> FromQuiverKey(const ObjectKey& key) {
  const auto& s = key.segments();
  if (s.size() != 3) return std::nullopt;
  return FlameKey{FromQuiverSegment(s[0]), FromQuiverSegment(s[1]), FromQuiverSegment(s[2])};
}

bool IsFlamePath(const arrow::flight::FlightDescriptor& d) {
  return d.type == arrow::flight::FlightDescriptor::PATH && d.path.size() == 1 &&
         d.path[0].find('/') != std::string::npos;
}

bool IsFlamePatch(const arrow::flight::FlightDescriptor& d) {
  return d.type == arrow::flight::FlightDescriptor::CMD && d.cmd.rfind(kPatchPrefix, 0) == 0;
}

bool IsFlameTicket(const std::string& ticket) {
  if (ticket.empty() || ticket.front() == '{') return false;
  const auto colon = ticket.rfind(':');
  if (colon == std::string::npos || colon + 1 == ticket.size()) return false;
  for (size_t i = colon + 1; i < ticket.size(); ++i) {
    if (ticket[i] < '0' || ticket[i] > '9') return false;
  }
  return true;
}

arrow::Result<FlameTicket> ParseFlameTicket(const std::string& ticket) {
  const auto colon = ticket.rfind(':');
  if (colon == std::string::npos) {
    return arrow::Status::Invalid("Flame ticket '", ticket, "' is not '<key>:<version>'");
  }
  FlameTicket out;
  const char* begin = ticket.data() + colon + 1;
  const char* end = ticket.data() + ticket.size();
  auto [stop, ec] = std::from_chars(begin, end, out.client_version);
  if (ec != std::errc() || stop != end || begin == end) {
    return arrow::Status::Invalid("Flame ticket '", ticket, "': invalid version");
  }
  ARROW_ASSIGN_OR_RAISE(out.key, ParseFlameKey(std::string_view(ticket).substr(0, colon)));
  if (!out.key.object) {
    return arrow::Status::Invalid("Flame ticket '", ticket,
                                  "': expected '<app>/<ssn>/<uuid>:<version>'");
  }
  return out;
}

std::string EncodeObjectRef(const std::string& endpoint, const std::string& key,
                            uint64_t version) {
  nlohmann::json ref = {
      {"endpoint", endpoint}, {"key", key}, {"version", static_cast<int64_t>(version)}};
  auto bytes = nlohmann::json::to_bson(ref);
  return std::string(bytes.begin(), bytes.end());
}

bool IsNativeTable(const arrow::Schema& schema) {
  const auto& m = schema.metadata();
  return m && m->Get(kFormatKey).ValueOr("") == kArrowTableFormat;
}

bool IsOpaqueSchema(const arrow::Schema& schema) {
  return !IsNativeTable(schema) && schema.num_fields() == 2 &&
         schema.field(0)->name() == "version" &&
         schema.field(0)->type()->id() == arrow::Type::UINT64 &&
         schema.field(1)->name() == "data" && schema.field(1)->type()->id() == arrow::Type::BINARY;
}

std::shared_ptr<arrow::Schema> AsNativeTable(const arrow::Schema& schema, uint64_t version) {
  auto m = schema.metadata() ? schema.metadata()->Copy()
                             : std::make_shared<arrow::KeyValueMetadata>();
  std::string logical = m->Get(kLogicalTypeKey).ValueOr("pyarrow.table");
  // Set replaces a key's value or appends it.
  (void)m->Set(kFormatKey, kArrowTableFormat);
  (void)m->Set(kVersionKey, std::to_string(version));
  (void)m->Set(kLogicalTypeKey, logical);
  return schema.WithMetadata(m);
}

std::shared_ptr<arrow::Schema> ResponseSchema() {
  static const auto schema = arrow::schema({arrow::field("version", arrow::uint64(), false),
                                            arrow::field("kind", arrow::utf8(), false),
                                            arrow::field("data", arrow::binary(), false)});
  return schema;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ResponseBatch(
    const std::vector<ResponseRow>& rows) {
  arrow::UInt64Builder versions;
  arrow::StringBuilder kinds;
  arrow::BinaryBuilder data;
  for (const auto& row : rows) {
    ARROW_RETURN_NOT_OK(versions.Append(row.version));
    ARROW_RETURN_NOT_OK(kinds.Append(row.base ? "base" : "patch"));
    ARROW_RETURN_NOT_OK(data.Append(row.data->data(), row.data->size()));
  }
  std::vector<std::shared_ptr<arrow::Array>> columns(3);
  ARROW_RETURN_NOT_OK(versions.Finish(&columns[0]));
  ARROW_RETURN_NOT_OK(kinds.Finish(&columns[1]));
  ARROW_RETURN_NOT_OK(data.Finish(&columns[2]));
  return arrow::RecordBatch::Make(ResponseSchema(), static_cast<int64_t>(rows.size()),
                                  std::move(columns));
}

arrow::Result<std::shared_ptr<arrow::Buffer>> OpaqueBytes(
    const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
  std::vector<std::shared_ptr<arrow::Buffer>> pieces;
  for (const auto& batch : batches) {
    if (!IsOpaqueSchema(*batch->schema())) {
      return arrow::Status::Invalid("not a Flame opaque object (version: uint64, data: binary): ",
                                    batch->schema()->ToString());
    }
    const auto& data = static_cast<const arrow::BinaryArray&>(*batch->column(1));
    for (int64_t i = 0; i < data.length(); ++i) {
      if (data.IsNull(i)) continue;
      auto view = data.GetView(i);
      pieces.push_back(arrow::SliceBuffer(data.value_data(), data.value_offset(i),
                                          static_cast<int64_t>(view.size())));
    }
  }
  if (pieces.size() == 1) return pieces.front();
  return arrow::ConcatenateBuffers(pieces);
}

std::string NewObjectId() {
  std::string hex = RandomHex(16);
  hex[12] = '4';                                             // version 4
  hex[16] = "89ab"[HexDigitValue(hex[16]) & 3];              // RFC 4122 variant
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

}  // namespace quiver::flame
