// ServeViewTicket (view_request.h): the stream of a view ticket. Apart from the parsing in
// view_request.cc, which needs no engine (the fuzz harnesses build it alone).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cache/engine.h"
#include "server/entry_stream.h"
#include "server/view_request.h"

namespace quiver {

using nlohmann::json;

arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> ServeViewTicket(
    Engine* engine, const std::string& ticket) {
  ARROW_ASSIGN_OR_RAISE(auto request, ParseViewRequest(ticket));
  if (request.view.empty() && request.encoding == Encoding::kArrowStream) {
    // Nothing to derive: the entry itself, as stored.
    ARROW_ASSIGN_OR_RAISE(auto parts,
                          engine->views()->OpenSourceParts(request.key, request.version));
    ViewResult plain;
    plain.source = parts.back().meta;
    plain.entry = parts.back();
    plain.cached_hit = true;
    ObjectRead read{std::move(parts), 0};
    ARROW_ASSIGN_OR_RAISE(auto streams, OpenParts(read));
    json meta = json::parse(ViewResultJson(plain));
    meta["key"] = meta["source"]["key"];
    return std::make_unique<EntryStream>(std::move(streams), meta.dump());
  }
  ARROW_ASSIGN_OR_RAISE(auto result, engine->views()->Serve(request));
  spdlog::debug("view of {}@{}: {} ({} ms)", result.source.key, result.source.version,
                result.cached_hit ? "hit" : "derived", result.derive_ms);
  ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(result.entry.file));
  return std::make_unique<EntryStream>(std::move(stored), ViewResultJson(result));
}

}  // namespace quiver
