// RedisIndex: use and eviction scores, the entries listing, settings, leases, rebuilding and
// announcements.
#include <chrono>
#include <cmath>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "index/redis_index.h"
#include "index/redis_scripts.h"

namespace quiver {

namespace {

constexpr size_t kBatch = 512;
constexpr size_t kMaxPendingTouches = 1000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double ToDouble(const redis::Reply& reply) {
  return reply.is_nil() || reply.str.empty() ? 0 : std::strtod(reply.str.c_str(), nullptr);
}

// "token|owner|endpoint" (the endpoint never holds '|').
std::optional<LeaseHolder> ParseHolder(const std::string& value, int64_t ttl_ms) {
  size_t first = value.find('|');
  size_t last = value.rfind('|');
  if (first == std::string::npos || last == first) return std::nullopt;
  LeaseHolder holder;
  holder.token = std::strtoull(value.substr(0, first).c_str(), nullptr, 10);
  holder.owner = value.substr(first + 1, last - first - 1);
  holder.endpoint = value.substr(last + 1);
  holder.ttl_ms = ttl_ms;
  return holder;
}

}  // namespace

std::string RedisIndex::PolicyArg(const ScoringPolicy& scoring) {
  return scoring.name == "lru" ? "lru" : "cost";
}

std::string RedisIndex::LogMArg(const ScoringPolicy& scoring) {
  // m = 1 + ln 2 / half_life: each access at tick t adds m^t to the weight (eviction_policy.h).
  const double half_life = scoring.half_life > 0 ? scoring.half_life : 1000;
  return fmt::format("{:.17g}", std::log1p(std::log(2.0) / half_life));
}

arrow::Status RedisIndex::Touch(const std::vector<std::pair<std::string, int64_t>>& counts,
                                int64_t now_ms, const ScoringPolicy& scoring) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(touch_mutex_);
    // The first pending read wakes the sender; those that arrive while it sends go together
    // in its next round trip.
    wake = pending_touches_.empty() || pending_touches_.size() >= kMaxPendingTouches;
    for (const auto& [key, n] : counts) pending_touches_[key] += n;
    touch_now_ms_ = now_ms;
    scoring_ = scoring;
  }
  if (options_.touch_flush_interval.count() <= 0) return FlushTouches();  // unbatched
  if (wake && touch_flusher_) touch_flusher_->Wake();
  return arrow::Status::OK();
}

arrow::Status RedisIndex::FlushTouches() {
  std::map<std::string, int64_t> pending;
  int64_t now = 0;
  ScoringPolicy scoring;
  {
    std::lock_guard<std::mutex> lock(touch_mutex_);
    pending.swap(pending_touches_);
    now = touch_now_ms_;
    scoring = scoring_;
  }
  if (pending.empty()) return arrow::Status::OK();
  const auto& script = RedisScripts::Get().touch;
  std::vector<std::vector<std::string>> commands;
  std::vector<const std::string*> keys;
  for (const auto& [key, n] : pending) {
    commands.push_back(script.EvalShaCommand(
        {names_.stats(), names_.score(), names_.entry(key)},
        {key, std::to_string(n), std::to_string(now), PolicyArg(scoring), LogMArg(scoring)}));
    keys.push_back(&key);
  }
  // Lost if the server is away: read counts only order eviction.
  ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline(commands));
  for (size_t i = 0; i < replies.size(); ++i) {
    if (!replies[i].is_error() || replies[i].str.rfind("NOSCRIPT", 0) != 0) continue;
    const std::string& key = *keys[i];
    ARROW_RETURN_NOT_OK(Run(script, {names_.stats(), names_.score(), names_.entry(key)},
                            {key, std::to_string(pending[key]), std::to_string(now),
                             PolicyArg(scoring), LogMArg(scoring)})
                            .status());
  }
  return arrow::Status::OK();
}

arrow::Result<std::optional<KeyUsage>> RedisIndex::ParseUsage(const redis::Reply& reply,
                                                              EntryMeta* latest) {
  if (reply.is_nil() || reply.elements.size() < 7) return std::nullopt;
  if (latest) {
    ARROW_ASSIGN_OR_RAISE(*latest, EntryFromJson(reply.elements[0].str));
  }
  KeyUsage usage;
  usage.bytes = static_cast<int64_t>(ToDouble(reply.elements[1]));
  usage.cost_s = ToDouble(reply.elements[2]);
  usage.accesses = static_cast<uint64_t>(ToDouble(reply.elements[3]));
  usage.created_ms = static_cast<int64_t>(ToDouble(reply.elements[4]));
  usage.last_access_ms = static_cast<int64_t>(ToDouble(reply.elements[5]));
  usage.score = ToDouble(reply.elements[6]);
  return usage;
}

arrow::Result<std::optional<KeyUsage>> RedisIndex::Usage(const std::string& key) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().describe,
                                        {names_.entry(key), names_.score()}, {key}));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "usage"));
  return ParseUsage(reply, nullptr);
}

arrow::Result<std::vector<IndexedKey>> RedisIndex::ListLatest(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto rebuilding, NeedsRebuild());
  if (rebuilding) return IndexUnavailable("index " + Describe() + " is being rebuilt from storage");
  ARROW_ASSIGN_OR_RAISE(auto keys, Command({"ZRANGEBYLEX", names_.keys(), "[" + prefix,
                                            "[" + prefix + "\xff"}));
  const auto& script = RedisScripts::Get().describe;
  std::vector<IndexedKey> out;
  for (size_t start = 0; start < keys.elements.size(); start += kBatch) {
    std::vector<std::vector<std::string>> commands;
    const size_t end = std::min(keys.elements.size(), start + kBatch);
    for (size_t i = start; i < end; ++i) {
      const std::string& key = keys.elements[i].str;
      commands.push_back(script.EvalShaCommand({names_.entry(key), names_.score()}, {key}));
    }
    ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline(commands));
    for (size_t i = 0; i < replies.size(); ++i) {
      auto reply = replies[i];
      if (reply.is_error() && reply.str.rfind("NOSCRIPT", 0) == 0) {
        const std::string& key = keys.elements[start + i].str;
        ARROW_ASSIGN_OR_RAISE(reply, Run(script, {names_.entry(key), names_.score()}, {key}));
      }
      ARROW_RETURN_NOT_OK(ReplyError(reply, "list"));
      IndexedKey item;
      ARROW_ASSIGN_OR_RAISE(auto usage, ParseUsage(reply, &item.latest));
      if (!usage) continue;  // removed meanwhile
      item.usage = *usage;
      out.push_back(std::move(item));
    }
  }
  return out;
}

arrow::Result<std::vector<std::pair<std::string, KeyUsage>>> RedisIndex::LowestScored(
    int64_t offset, int64_t limit) {
  ARROW_ASSIGN_OR_RAISE(auto ranked, Command({"ZRANGE", names_.score(), std::to_string(offset),
                                              std::to_string(offset + limit - 1)}));
  const auto& script = RedisScripts::Get().describe;
  std::vector<std::vector<std::string>> commands;
  for (const auto& item : ranked.elements) {
    commands.push_back(script.EvalShaCommand({names_.entry(item.str), names_.score()}, {item.str}));
  }
  std::vector<std::pair<std::string, KeyUsage>> out;
  if (commands.empty()) return out;
  ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline(commands));
  for (size_t i = 0; i < replies.size(); ++i) {
    auto reply = replies[i];
    const std::string& key = ranked.elements[i].str;
    if (reply.is_error() && reply.str.rfind("NOSCRIPT", 0) == 0) {
      ARROW_ASSIGN_OR_RAISE(reply, Run(script, {names_.entry(key), names_.score()}, {key}));
    }
    ARROW_RETURN_NOT_OK(ReplyError(reply, "usage"));
    ARROW_ASSIGN_OR_RAISE(auto usage, ParseUsage(reply, nullptr));
    if (usage) out.emplace_back(key, *usage);
  }
  return out;
}

arrow::Result<std::map<std::string, std::string>> RedisIndex::GetSettings() {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"HGETALL", names_.settings()}));
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    out[reply.elements[i].str] = reply.elements[i + 1].str;
  }
  return out;
}

arrow::Status RedisIndex::SetSettings(const std::map<std::string, std::string>& settings) {
  if (settings.empty()) return arrow::Status::OK();
  std::vector<std::string> argv = {"HSET", names_.settings()};
  for (const auto& [name, value] : settings) {
    argv.push_back(name);
    argv.push_back(value);
  }
  return Command(argv).status();
}

arrow::Result<LeaseGrant> RedisIndex::AcquireLease(const std::string& name,
                                                   const std::string& owner,
                                                   const std::string& endpoint, int64_t ttl_ms) {
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Run(RedisScripts::Get().lease_acquire,
                            {names_.lease(name), names_.stats()},
                            {owner, endpoint, std::to_string(std::max<int64_t>(ttl_ms, 1))}));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "lease"));
  LeaseGrant grant;
  if (reply.elements.size() >= 2 && reply.elements[0].integer == 1) {
    grant.acquired = true;
    grant.token = static_cast<uint64_t>(reply.elements[1].integer);
    grant.holder = LeaseHolder{owner, endpoint, grant.token, ttl_ms};
    return grant;
  }
  if (reply.elements.size() < 3) {
    return arrow::Status::IOError("index lease: unexpected reply ", reply.DebugString());
  }
  auto holder = ParseHolder(reply.elements[1].str, reply.elements[2].integer);
  if (holder) grant.holder = *holder;
  return grant;
}

arrow::Result<bool> RedisIndex::RenewLease(const LeaseRef& lease, int64_t ttl_ms) {
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Run(RedisScripts::Get().lease_keep, {names_.lease(lease.name)},
                            {std::to_string(lease.token), std::to_string(std::max<int64_t>(ttl_ms, 1))}));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "lease"));
  return reply.integer == 1;
}

arrow::Status RedisIndex::ReleaseLease(const LeaseRef& lease) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().lease_keep,
                                        {names_.lease(lease.name)},
                                        {std::to_string(lease.token), ""}));
  return ReplyError(reply, "lease");
}

arrow::Result<std::optional<LeaseHolder>> RedisIndex::GetLease(const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline({{"GET", names_.lease(name)},
                                                {"PTTL", names_.lease(name)}}));
  if (replies.size() != 2 || replies[0].is_nil()) return std::nullopt;
  ARROW_RETURN_NOT_OK(ReplyError(replies[0], "lease"));
  return ParseHolder(replies[0].str, replies[1].integer);
}

arrow::Status RedisIndex::Restore(const EntryMeta& entry, const ScoringPolicy& scoring) {
  // Like a publish, the script must be told the latest version's sets; it refuses if the
  // latest changed meanwhile (another node restoring the same key).
  for (int attempt = 0; attempt < 8; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(auto state, Command({"HMGET", names_.entry(entry.key), "lv", "lb"}));
    std::optional<EntryMeta> latest;
    std::string latest_blob;
    if (!state.elements[0].is_nil()) {
      latest_blob = state.elements[1].str;
      ARROW_ASSIGN_OR_RAISE(auto json, Command({"HGET", names_.entry(entry.key),
                                                "m:" + state.elements[0].str}));
      if (!json.is_nil()) {
        ARROW_ASSIGN_OR_RAISE(latest, EntryFromJson(json.str));
      }
    }
    std::vector<std::string> keys = {names_.meta(), names_.stats(), names_.entry(entry.key),
                                     names_.score(), names_.keys()};
    AddLinkKeys(&entry, &keys);
    AddLinkKeys(latest ? &*latest : nullptr, &keys);
    ARROW_ASSIGN_OR_RAISE(
        auto reply,
        Run(RedisScripts::Get().restore, keys,
            {entry.key, std::to_string(entry.version), entry.blob, EntryToJson(entry),
             std::to_string(entry.bytes), latest_blob, fmt::format("{:.17g}", entry.cost_ms / 1000.0),
             std::to_string(entry.created_ms), std::to_string(entry.expires_ms),
             std::to_string(entry.depends_on.size()), std::to_string(entry.tags.size()),
             std::to_string(latest ? latest->depends_on.size() : 0),
             std::to_string(latest ? latest->tags.size() : 0), PolicyArg(scoring),
             LogMArg(scoring)}));
    ARROW_RETURN_NOT_OK(ReplyError(reply, "restore"));
    if (reply.str == "ok") return arrow::Status::OK();
    if (reply.str == "ready") {
      return arrow::Status::Cancelled("index ", Describe(),
                                      " was rebuilt meanwhile (by another node); stopping");
    }
    if (reply.str == "exists") {
      return arrow::Status::AlreadyExists("version ", entry.version, " of '", entry.key,
                                          "' is already in the index");
    }
  }
  return arrow::Status::IOError("index restore of '", entry.key, "' kept conflicting");
}

arrow::Result<bool> RedisIndex::NeedsRebuild() {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"HGET", names_.meta(), "ready"}));
  const bool needs = reply.is_nil() || reply.str != "1";
  if (needs) {
    SetHealth(IndexHealth{false, "rebuilding", "the index lost its data"});
  } else {
    MarkReady();
  }
  return needs;
}

arrow::Status RedisIndex::MarkRebuilt() {
  const int64_t now = NowMs();
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().mark_rebuilt,
                                        {names_.meta(), names_.stats()},
                                        {std::to_string(now * 1000), options_.node,
                                         std::to_string(now)}));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "mark rebuilt"));
  MarkReady();
  return arrow::Status::OK();
}

arrow::Result<std::string> RedisIndex::ClusterSecret(bool refresh) {
  std::lock_guard<std::mutex> lock(secret_mutex_);
  if (!secret_.empty() && !refresh) return secret_;
  std::random_device device;
  std::string candidate = fmt::format("{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                                      device(), device(), device(), device(), device(), device(),
                                      device(), device());
  ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline({{"HSETNX", names_.meta(), "secret", candidate},
                                                {"HGET", names_.meta(), "secret"}}));
  if (replies.size() != 2 || replies[1].is_nil() || replies[1].is_error()) {
    return arrow::Status::IOError("index: cannot read the cluster secret");
  }
  secret_ = replies[1].str;
  return secret_;
}

arrow::Status RedisIndex::Announce(const IndexEvent& event) {
  static const char* kKinds[] = {"removed", "fill-ended", "settings"};
  nlohmann::json j = {{"kind", kKinds[static_cast<int>(event.kind)]},
                      {"node", event.node},
                      {"key", event.key},
                      {"blobs", event.blobs}};
  return Command({"PUBLISH", names_.events(), j.dump()}).status();
}

void RedisIndex::Subscribe(std::function<void(const IndexEvent&)> on_event,
                           std::function<void(bool resubscribed)> on_connection) {
  auto deliver = [on_event = std::move(on_event)](const std::string& payload) {
    auto j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return;
    // A message of another shape (a newer node, or someone else) is ignored, never thrown.
    for (const char* field : {"kind", "node", "key"}) {
      if (!j.contains(field) || !j[field].is_string()) return;
    }
    IndexEvent event;
    const std::string kind = j.value("kind", "");
    if (kind == "removed") event.kind = IndexEvent::Kind::kRemoved;
    else if (kind == "fill-ended") event.kind = IndexEvent::Kind::kFillEnded;
    else if (kind == "settings") event.kind = IndexEvent::Kind::kSettings;
    else return;  // a newer node's announcement
    event.node = j.value("node", "");
    event.key = j.value("key", "");
    if (j.contains("blobs") && j["blobs"].is_array()) {
      for (const auto& blob : j["blobs"]) {
        if (blob.is_string()) event.blobs.push_back(blob.get<std::string>());
      }
    }
    on_event(event);
  };
  // The first subscription is not a re-subscription: nothing was missed before it.
  auto first = std::make_shared<bool>(true);
  subscriber_ = std::make_unique<redis::Subscriber>(
      options_.connect, names_.events(), std::move(deliver),
      [first, on_connection = std::move(on_connection)](bool subscribed) {
        if (!subscribed) return;
        if (*first) {
          *first = false;
          return;
        }
        on_connection(true);
      });
  subscriber_->Start();
}

}  // namespace quiver
