#include "server/flight_service.h"

#include <chrono>

#include <arrow/buffer.h>
#include <arrow/ipc/dictionary.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "server/actions.h"
#include "server/artifact_request.h"
#include "server/entry_stream.h"
#include "server/fill_stream.h"
#include "server/flight_auth.h"
#include "server/flight_errors.h"
#include "server/flight_middleware.h"
#include "server/node_ticket.h"
#include "server/query_command.h"
#include "server/query_request.h"
#include "server/result_access.h"
#include "server/ticket.h"
#include "server/view_request.h"
#include "storage/blob_store.h"

namespace quiver {

namespace flight = arrow::flight;
using nlohmann::json;

namespace {

// Prefix an error with what the request was about, keeping its code and detail.
arrow::Status WithContext(const arrow::Status& st, const std::string& context) {
  if (st.ok()) return st;
  return arrow::Status(st.code(), context + ": " + st.message(), st.detail());
}

arrow::Result<PutOptions> ParsePutOptions(const std::shared_ptr<arrow::Buffer>& metadata) {
  PutOptions options;
  if (!metadata || metadata->size() == 0) return options;
  json j = json::parse(metadata->ToString(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return arrow::Status::Invalid("DoPut app_metadata must be a JSON object, e.g. "
                                  "{\"if_version\": 3}");
  }
  for (auto& [name, value] : j.items()) {
    if (name == "if_version") {
      if (!value.is_number_unsigned()) {
        return arrow::Status::Invalid("if_version must be a non-negative integer, got ",
                                      value.dump());
      }
      options.if_version = value.get<uint64_t>();
    } else if (name == "patch") {
      if (!value.is_boolean()) {
        return arrow::Status::Invalid("DoPut option 'patch' must be true or false, got ",
                                      value.dump());
      }
      options.patch = value.get<bool>();
    } else if (name == "cost_ms") {
      if (!value.is_number() || value.get<double>() < 0 || value.get<double>() > 1e12) {
        return arrow::Status::Invalid("cost_ms must be a non-negative number of milliseconds, got ",
                                      value.dump());
      }
      options.cost_ms = static_cast<int64_t>(value.get<double>());
    } else if (name == "depends_on" || name == "tags") {
      if (!value.is_array()) {
        return arrow::Status::Invalid("DoPut option '", name, "' must be an array of strings");
      }
      for (const auto& v : value) {
        if (!v.is_string() || v.get<std::string>().empty()) {
          return arrow::Status::Invalid("DoPut option '", name,
                                        "' must hold non-empty strings, got ", v.dump());
        }
        if (name == "depends_on") {
          const auto dep = v.get<std::string>();
          if (!IsQueryKey(dep)) {
            auto parsed = ObjectKey::Parse(dep);
            if (!parsed.ok()) {
              return arrow::Status::Invalid("depends_on: ", parsed.status().message());
            }
          }
          options.depends_on.push_back(dep);
        } else {
          options.tags.push_back(v.get<std::string>());
        }
      }
    } else {
      return arrow::Status::Invalid("unknown DoPut option '", name, "'");
    }
  }
  return options;
}

// The next message of a put. Arrow's reader returns an empty chunk both at the end of the
// stream and for a metadata-only message whose metadata is empty: the end repeats, such a
// message does not, so an empty chunk is read past once (otherwise the put would commit
// early and lose the batches after it).
arrow::Result<flight::FlightStreamChunk> NextChunk(flight::FlightMessageReader* reader) {
  ARROW_ASSIGN_OR_RAISE(auto chunk, reader->Next());
  if (chunk.data || chunk.app_metadata) return chunk;
  return reader->Next();
}

// A metadata-only message {"abort": "reason"}: the client gives up on its put (its data
// source failed, it was cancelled) and nothing may be stored. Closing the stream instead
// would commit what was sent so far. Returns the reason, or nullopt for any other message.
std::optional<std::string> AbortReason(const flight::FlightStreamChunk& chunk) {
  if (chunk.data || !chunk.app_metadata || chunk.app_metadata->size() == 0) return std::nullopt;
  json j = json::parse(chunk.app_metadata->ToString(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("abort")) return std::nullopt;
  const auto& reason = j["abort"];
  return reason.is_string() ? reason.get<std::string>() : reason.dump();
}

// The response metadata of a query: in FlightInfo.app_metadata and on the first batch.
std::string ResponseJson(const QueryResponse& r) {
  const char* kind = r.kind == QueryResponse::Kind::kHit    ? "hit"
                     : r.kind == QueryResponse::Kind::kMiss ? "miss"
                                                            : "bypass";
  json j = {{"cache", kind}, {"key", r.key}, {"cached", r.kind != QueryResponse::Kind::kBypass}};
  if (r.kind == QueryResponse::Kind::kMiss) j["joined"] = r.joined;
  j["stale"] = r.stale;
  if (r.kind == QueryResponse::Kind::kHit) j["refreshing"] = r.refreshing;
  if (r.kind != QueryResponse::Kind::kBypass) {
    j["created_ms"] = r.created_ms;
    j["expires_ms"] = r.expires_ms;
  }
  j["exec_ms"] = r.exec_ms >= 0 ? json(r.exec_ms) : json(nullptr);
  if (!r.node.empty()) j["node"] = r.node;
  if (!r.reason.empty()) j["reason"] = r.reason;
  return j.dump();
}

// Metrics and the request log: what the call asked for (a small fixed set of names).
void NoteKind(RequestMiddleware* call, std::string kind) {
  if (call) call->set_kind(std::move(kind));
}

// A query's key, and whether it was a hit, a miss, a joined fill or a bypass.
void NoteQuery(RequestMiddleware* call, const QueryResponse& r) {
  if (!call) return;
  call->set_key(r.key);
  call->set_outcome(r.kind == QueryResponse::Kind::kHit    ? "hit"
                    : r.kind == QueryResponse::Kind::kBypass ? "bypass"
                    : r.joined                               ? "join"
                                                             : "miss");
}

// An action type as a metric label: the listed ones by name, anything else as "unknown".
std::string ActionKind(const std::string& type) {
  static const std::vector<flight::ActionType> listed = ListedActions();
  for (const auto& a : listed) {
    if (a.type == type) return "DoAction:" + type;
  }
  return type == flame::kDeleteAction ? "DoAction:" + type : "DoAction:unknown";
}

std::string Millis(std::chrono::steady_clock::time_point start) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count());
}

}  // namespace

void QuiverFlightService::Start(Engine* engine) {
  engine_ = engine;
  cache_ = engine->objects();
  queries_ = engine->queries();
  flame_ = std::make_unique<FlameAdapter>(cache_, endpoint_);
  started_ = true;
}

template <typename Body>
arrow::Status QuiverFlightService::Serve(Body&& body) const {
  if (!started_) {
    return flight::MakeFlightError(flight::FlightStatusCode::Unavailable,
                                   "quiver is starting (rebuilding its index); retry shortly",
                                   R"({"error":"unavailable"})");
  }
  return ToFlightError(body());
}

void QuiverFlightService::set_endpoint(const flight::Location& location) {
  endpoint_ = location;
  endpoint_text_ = location.ToString();
}

std::string QuiverFlightService::ObjectRefJson(const EntryMeta& meta, const TenantScope& scope,
                                               const char* status) const {
  json j = {{"endpoint", endpoint_text_}, {"key", scope.ShowKey(meta.key)},
            {"version", meta.version}};
  if (status) j["status"] = status;
  return j.dump();
}

arrow::Result<ObjectKey> QuiverFlightService::KeyFromDescriptor(
    const flight::FlightDescriptor& d, const TenantScope& scope) const {
  if (d.type != flight::FlightDescriptor::PATH) {
    return arrow::Status::Invalid(
        "object calls take a PATH descriptor such as [\"session\", \"object\"]");
  }
  ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::FromSegments(d.path));
  return scope.Key(key);
}

arrow::Result<flight::FlightInfo> QuiverFlightService::MakeInfo(const OpenEntry& entry,
                                                                const TenantScope& scope) const {
  ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(entry.file));
  const std::string shown = scope.ShowKey(entry.meta.key);
  flight::FlightEndpoint endpoint;
  endpoint.ticket.ticket = shown + "@" + std::to_string(entry.meta.version);
  endpoint.locations.push_back(endpoint_);
  ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::Parse(shown));
  auto descriptor = flight::FlightDescriptor::Path(key.segments());
  int64_t rows = entry.meta.rows, bytes = entry.meta.bytes;
  if (entry.meta.is_patch()) {  // the object is its base and patches: count them all
    ARROW_ASSIGN_OR_RAISE(auto read, cache_->Parts(entry));
    rows = bytes = 0;
    for (const auto& part : read.parts) {
      rows += part.meta.rows;
      bytes += part.meta.bytes;
    }
  }
  return flight::FlightInfo::Make(*stored->schema(), descriptor, {endpoint}, rows, bytes,
                                  /*ordered=*/true, ObjectRefJson(entry.meta, scope));
}

arrow::Status QuiverFlightService::ListFlights(const flight::ServerCallContext& context,
                                               const flight::Criteria* criteria,
                                               std::unique_ptr<flight::FlightListing>* listings) {
  return Serve([&] {
    ARROW_ASSIGN_OR_RAISE(auto caller, Authorize(context, Role::kReader, "list entries"));
    auto infos = ListInfos(criteria ? criteria->expression : "", caller.scope);
    if (!infos.ok()) return WithContext(infos.status(), "ListFlights");
    *listings = std::make_unique<flight::SimpleFlightListing>(std::move(*infos));
    return arrow::Status::OK();
  });
}

arrow::Result<std::vector<flight::FlightInfo>> QuiverFlightService::ListInfos(
    const std::string& prefix, const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto metas, cache_->List(scope.ListPrefix(prefix)));
  std::vector<flight::FlightInfo> infos;
  infos.reserve(metas.size());
  for (auto& meta : metas) {
    ARROW_ASSIGN_OR_RAISE(auto entry, cache_->Peek(std::move(meta)));
    if (!entry) continue;  // deleted or trimmed meanwhile
    auto info = MakeInfo(*entry, scope);
    if (!info.ok() && info.status().IsKeyError()) {
      // A patched object missing a link of its chain cannot be read; the others can.
      spdlog::warn("ListFlights: skipping {}", info.status().message());
      continue;
    }
    ARROW_RETURN_NOT_OK(info.status());
    infos.push_back(std::move(*info));
  }
  return infos;
}

arrow::Result<std::unique_ptr<flight::FlightInfo>> QuiverFlightService::QueryInfo(
    const flight::FlightDescriptor& request, const Identity& who, RequestMiddleware* call) {
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanCommand(engine_, request.cmd, who));
  flight::FlightEndpoint endpoint;
  endpoint.ticket.ticket = request.cmd;  // DoGet redeems the same request
  endpoint.locations.push_back(endpoint_);
  if (!plan.bypass_reason.empty()) {
    // Executing here would run a bypass twice (once more for DoGet): no schema yet.
    QueryResponse r;
    r.kind = QueryResponse::Kind::kBypass;
    r.key = plan.key;
    r.reason = plan.bypass_reason;
    NoteQuery(call, r);
    ARROW_ASSIGN_OR_RAISE(auto info, flight::FlightInfo::Make(*arrow::schema({}), request,
                                                              {endpoint}, -1, -1, true,
                                                              ResponseJson(r)));
    return std::make_unique<flight::FlightInfo>(std::move(info));
  }
  ARROW_ASSIGN_OR_RAISE(auto r, ExecuteCommand(engine_, plan));
  NoteQuery(call, r);
  if (r.hit) {
    ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(r.hit->file));
    ARROW_ASSIGN_OR_RAISE(auto info, flight::FlightInfo::Make(
                                         *stored->schema(), request, {endpoint}, r.hit->meta.rows,
                                         r.hit->meta.bytes, true, ResponseJson(r)));
    return std::make_unique<flight::FlightInfo>(std::move(info));
  }
  // A miss: the fill now runs; the DoGet that follows joins it. Wait for its schema.
  auto schema = r.fill->WaitSchema();
  r.fill->HandOver(r.reader);  // to the DoGet the client sends next
  ARROW_RETURN_NOT_OK(schema.status());
  ARROW_ASSIGN_OR_RAISE(auto info, flight::FlightInfo::Make(*schema->first, request, {endpoint},
                                                            -1, -1, true, ResponseJson(r)));
  return std::make_unique<flight::FlightInfo>(std::move(info));
}

arrow::Result<std::unique_ptr<flight::FlightDataStream>> QuiverFlightService::QueryStream(
    const std::string& ticket, const Identity& who, RequestMiddleware* call) {
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanCommand(engine_, ticket, who));
  ARROW_ASSIGN_OR_RAISE(auto r, ExecuteCommand(engine_, plan));
  NoteQuery(call, r);
  if (r.hit) {
    ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(r.hit->file));
    return std::make_unique<EntryStream>(std::move(stored), ResponseJson(r));
  }
  return std::make_unique<FillStream>(r.fill, r.reader, ResponseJson(r));
}

arrow::Status QuiverFlightService::GetFlightInfo(const flight::ServerCallContext& context,
                                                 const flight::FlightDescriptor& request,
                                                 std::unique_ptr<flight::FlightInfo>* info) {
  RequestMiddleware* call = CallRequest(context);
  return Serve([&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto caller, Authorize(context, Role::kReader, "read"));
    if (request.type == flight::FlightDescriptor::CMD) {
      NoteKind(call, std::string("GetFlightInfo:") + CommandName(request.cmd));
      return WithContext(QueryInfo(request, *caller.who, call).Value(info),
                         CommandName(request.cmd));
    }
    if (flame::IsFlamePath(request)) {
      NoteKind(call, "GetFlightInfo:flame");
      return flame_->Info(request, caller.scope).Value(info);
    }
    NoteKind(call, "GetFlightInfo:object");
    ARROW_ASSIGN_OR_RAISE(auto key, KeyFromDescriptor(request, caller.scope));
    if (call) call->set_key(key.ToString());
    ARROW_ASSIGN_OR_RAISE(auto entry, PeekObject(key, "GetFlightInfo"));
    ARROW_ASSIGN_OR_RAISE(auto made, MakeInfo(entry, caller.scope));
    *info = std::make_unique<flight::FlightInfo>(std::move(made));
    return arrow::Status::OK();
  });
}

arrow::Status QuiverFlightService::GetSchema(const flight::ServerCallContext& context,
                                             const flight::FlightDescriptor& request,
                                             std::unique_ptr<flight::SchemaResult>* schema) {
  RequestMiddleware* call = CallRequest(context);
  return Serve([&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto caller, Authorize(context, Role::kReader, "read"));
    if (request.type == flight::FlightDescriptor::CMD) {
      NoteKind(call, std::string("GetSchema:") + CommandName(request.cmd));
      auto info = QueryInfo(request, *caller.who, call);
      if (!info.ok()) return WithContext(info.status(), CommandName(request.cmd));
      arrow::ipc::DictionaryMemo memo;
      ARROW_ASSIGN_OR_RAISE(auto s, (*info)->GetSchema(&memo));
      return flight::SchemaResult::Make(*s).Value(schema);
    }
    ARROW_ASSIGN_OR_RAISE(auto key, KeyFromDescriptor(request, caller.scope));
    ARROW_ASSIGN_OR_RAISE(auto entry, PeekObject(key, "GetSchema"));
    ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(entry.file));
    return flight::SchemaResult::Make(*stored->schema()).Value(schema);
  });
}

arrow::Result<OpenEntry> QuiverFlightService::PeekObject(const ObjectKey& key,
                                                         const char* call) {
  auto peeked = cache_->Peek(key, std::nullopt);
  if (!peeked.ok()) {
    return WithContext(peeked.status(), std::string(call) + " '" + key.ToString() + "'");
  }
  if (!*peeked) return arrow::Status::KeyError("no object '", key.ToString(), "'");
  return std::move(**peeked);
}

arrow::Result<NodeJoin> QuiverFlightService::VerifyJoin(const std::string& ticket) {
  Index* index = engine_->options().index.get();
  ARROW_ASSIGN_OR_RAISE(auto secret, index->ClusterSecret(/*refresh=*/false));
  auto join = VerifyNodeTicket(ticket, secret);
  if (!IsNodeTicketRefused(join.status())) return join;
  // The secret changes when the index is rebuilt after losing its data: read it again (the
  // index limits how often a refused ticket makes it do so).
  ARROW_ASSIGN_OR_RAISE(auto fresh, index->ClusterSecret(/*refresh=*/true));
  if (fresh == secret) return join;
  return VerifyNodeTicket(ticket, fresh);
}

arrow::Result<std::unique_ptr<flight::FlightDataStream>> QuiverFlightService::NodeStream(
    const flight::ServerCallContext& context, const std::string& ticket) {
  ARROW_ASSIGN_OR_RAISE(auto join, VerifyJoin(ticket));
  ARROW_ASSIGN_OR_RAISE(auto joined, queries_->JoinForPeer(join.key, join.token));
  spdlog::info("query {}: node {} joined this node's fill ({})", join.key.substr(0, 12),
               join.from, context.peer());
  return std::make_unique<FillStream>(joined.first, joined.second, "{}");
}

arrow::Status QuiverFlightService::DoGet(const flight::ServerCallContext& context,
                                         const flight::Ticket& request,
                                         std::unique_ptr<flight::FlightDataStream>* stream) {
  RequestMiddleware* call = CallRequest(context);
  auto st = Serve([&]() -> arrow::Status {
    if (IsNodeTicket(request.ticket)) {
      NoteKind(call, "DoGet:node");
      return WithContext(NodeStream(context, request.ticket).Value(stream), "node join");
    }
    // A node ticket carries its own proof (above); every other DoGet needs a reader.
    ARROW_ASSIGN_OR_RAISE(auto caller, Authorize(context, Role::kReader, "read"));
    if (LooksLikeQuery(request.ticket) || LooksLikeArtifact(request.ticket)) {
      NoteKind(call, std::string("DoGet:") + CommandName(request.ticket));
      return WithContext(QueryStream(request.ticket, *caller.who, call).Value(stream),
                         CommandName(request.ticket));
    }
    if (flame::IsFlameTicket(request.ticket)) {
      NoteKind(call, "DoGet:flame");
      return flame_->Get(request.ticket, caller.scope).Value(stream);
    }
    if (LooksLikeView(request.ticket)) {
      NoteKind(call, "DoGet:view");
      return WithContext(ServeViewTicket(engine_, request.ticket, *caller.who).Value(stream),
                         "view");
    }
    NoteKind(call, "DoGet:object");
    return ObjectStream(context, request.ticket, caller.scope).Value(stream);
  });
  if (st.ok() && call) *stream = call->CountBytes(std::move(*stream));
  return st;
}

arrow::Result<std::unique_ptr<flight::FlightDataStream>> QuiverFlightService::ObjectStream(
    const flight::ServerCallContext& context, const std::string& text,
    const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto ticket, ObjectTicket::Parse(text));
  ARROW_ASSIGN_OR_RAISE(ticket.key, scope.Key(ticket.key));
  const std::string& key = ticket.key.ToString();
  RequestMiddleware* call = CallRequest(context);
  if (call) call->set_key(key);
  auto got = cache_->Read(ticket.key, ticket.version, ticket.since);
  if (!got.ok()) return WithContext(got.status(), "DoGet '" + key + "'");
  auto read = std::move(*got);
  if (!read) {
    if (ticket.version) {
      return arrow::Status::KeyError("no version ", *ticket.version, " of object '", key,
                                     "' (deleted, never written, or no longer kept)");
    }
    return arrow::Status::KeyError("no object '", key, "'");
  }
  const EntryMeta& meta = read->meta();
  ARROW_ASSIGN_OR_RAISE(auto parts, OpenParts(*read));
  if ((ticket.if_none_match && *ticket.if_none_match == meta.version) ||
      (ticket.since && *ticket.since == meta.version)) {
    cache_->CountNotModified();
    if (call) call->set_outcome("not_modified");
    spdlog::debug("DoGet {}@{} not modified ({})", key, meta.version, context.peer());
    return MakeNotModifiedStream(*parts.front(), ObjectRefJson(meta, scope, "not_modified"));
  }
  spdlog::debug("DoGet {}@{} ({} parts) to {}", key, meta.version, parts.size(), context.peer());
  if (call) call->set_outcome("hit");
  json ref = json::parse(ObjectRefJson(meta, scope, read->since ? "patches" : "ok"));
  if (read->since) ref["since"] = read->since;
  return std::make_unique<EntryStream>(std::move(parts), ref.dump());
}

arrow::Status QuiverFlightService::DoPut(const flight::ServerCallContext& context,
                                         std::unique_ptr<flight::FlightMessageReader> reader,
                                         std::unique_ptr<flight::FlightMetadataWriter> writer) {
  return Serve([&] {
    ARROW_ASSIGN_OR_RAISE(auto caller, Authorize(context, Role::kWriter, "put"));
    const auto& d = reader->descriptor();
    if (flame::IsFlamePath(d) || flame::IsFlamePatch(d)) {
      NoteKind(CallRequest(context), "DoPut:flame");
      return flame_->Put(context, reader.get(), writer.get(), caller.scope);
    }
    NoteKind(CallRequest(context), "DoPut:object");
    return Put(context, reader.get(), writer.get(), *caller.who, caller.scope);
  });
}

arrow::Status QuiverFlightService::Put(const flight::ServerCallContext& context,
                                       flight::FlightMessageReader* reader,
                                       flight::FlightMetadataWriter* writer,
                                       const Identity& who, const TenantScope& scope) {
  auto start = std::chrono::steady_clock::now();
  ARROW_ASSIGN_OR_RAISE(auto key, KeyFromDescriptor(reader->descriptor(), scope));
  if (auto* call = CallRequest(context)) call->set_key(key.ToString());
  const std::string where = "DoPut '" + key.ToString() + "'";
  auto schema = reader->GetSchema();
  if (!schema.ok()) {
    cache_->CountPutFailure();
    return WithContext(arrow::Status::Invalid(schema.status().message()),
                       where + ": malformed Arrow IPC stream");
  }
  // Options ride on the first message's app_metadata (a metadata-only message or the
  // first batch).
  auto first = NextChunk(reader);
  if (!first.ok()) {
    cache_->CountPutFailure();
    return WithContext(arrow::Status::Invalid(first.status().message()),
                       where + ": malformed Arrow IPC stream");
  }
  if (auto reason = AbortReason(*first)) {
    cache_->CountPutFailure();
    return arrow::Status::Cancelled(where, ": the client aborted the put (", *reason,
                                    "); nothing was stored");
  }
  auto options = ParsePutOptions(first->app_metadata);
  if (options.ok()) {
    auto mapped = scope.MapPutOptions(&*options, [&](const std::string& result) {
      return CheckResultDependency(engine_, who, scope, result);
    });
    if (!mapped.ok()) options = mapped;
  }
  if (!options.ok()) {
    cache_->CountPutFailure();
    return WithContext(options.status(), where);
  }
  auto put = cache_->BeginPut(key, *schema, *options);
  if (!put.ok()) return WithContext(put.status(), where);

  flight::FlightStreamChunk chunk = std::move(*first);
  while (chunk.data || chunk.app_metadata) {
    if (auto reason = AbortReason(chunk)) {
      spdlog::info("{}: the client aborted the put ({}); discarded", where, *reason);
      (*put)->Abort();
      return arrow::Status::Cancelled(where, ": the client aborted the put (", *reason,
                                      "); nothing was stored");
    }
    if (chunk.data) {
      auto st = (*put)->Write(*chunk.data);
      if (!st.ok()) return WithContext(st, where);
    }
    auto next = NextChunk(reader);
    if (!next.ok()) {
      // Either the client sent bytes that are not Arrow IPC, or it went away.
      if (context.is_cancelled()) {
        spdlog::warn("{}: client disconnected mid-put; discarded", where);
        return arrow::Status::Cancelled(where, ": client disconnected; nothing was stored");
      }
      return WithContext(arrow::Status::Invalid(next.status().message()),
                         where + ": malformed Arrow IPC stream; nothing was stored");
    }
    chunk = std::move(*next);
  }
  if (context.is_cancelled()) {
    // A client that goes away ends the stream early rather than with an error.
    spdlog::warn("{}: client disconnected mid-put; discarded", where);
    return arrow::Status::Cancelled(where, ": client disconnected; nothing was stored");
  }
  auto meta = (*put)->Commit();
  if (!meta.ok()) return WithContext(meta.status(), where);
  spdlog::info("put {}@{}: {} rows, {} in {} ms", meta->key, meta->version, meta->rows,
               FormatByteSize(meta->bytes), Millis(start));
  return writer->WriteMetadata(*arrow::Buffer::FromString(ObjectRefJson(*meta, scope)));
}

arrow::Status QuiverFlightService::ListActions(const flight::ServerCallContext&,
                                               std::vector<flight::ActionType>* actions) {
  // Public, like /healthz: it names the API's actions and holds no data, and the nodes of a
  // cluster probe each other with it before a live join (flight_peer_client.cc).
  *actions = ListedActions();
  flight::ActionType flame_delete;
  flame_delete.type = flame::kDeleteAction;
  flame_delete.description = "Flame: delete an object, app/session or app/* (plain-text body)";
  actions->push_back(std::move(flame_delete));
  return arrow::Status::OK();
}

arrow::Status QuiverFlightService::DoAction(const flight::ServerCallContext& context,
                                            const flight::Action& action,
                                            std::unique_ptr<flight::ResultStream>* result) {
  NoteKind(CallRequest(context), ActionKind(action.type));
  return Serve([&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(
        auto caller, Authorize(context, ActionRole(action.type), "run action '" + action.type + "'"));
    std::string body = action.body ? action.body->ToString() : "";
    auto out = action.type == flame::kDeleteAction
                   ? flame_->Delete(body, caller.scope)
                   : RunAction(engine_, action.type, body, *caller.who);
    if (!out.ok()) return WithContext(out.status(), "action '" + action.type + "'");
    std::vector<flight::Result> results(1);
    results[0].body = arrow::Buffer::FromString(std::move(*out));
    *result = std::make_unique<flight::SimpleResultStream>(std::move(results));
    return arrow::Status::OK();
  });
}

}  // namespace quiver
