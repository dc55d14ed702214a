// RedisIndex: use and eviction scores, the entries listing, settings, leases, rebuilding and
// announcements.
#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/hex.h"
#include "index/redis_index.h"
#include "index/redis_scripts.h"

namespace quiver {

namespace {

constexpr size_t kMaxPendingTouches = 1000;
// A refresh of the cluster secret reads the index at most this often.
constexpr std::chrono::seconds kSecretRereadInterval{1};
constexpr int kRestoreAttempts = 8;

}  // namespace

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
    UseScoringLocked(scoring);
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
    if (pending_touches_.empty()) return arrow::Status::OK();
    pending.swap(pending_touches_);
    now = touch_now_ms_;
    scoring = scoring_;
  }
  // The same for every key of the batch.
  const ScoringArgs scoring_args(scoring);
  const std::string now_arg = std::to_string(now);
  std::vector<redis::Script::Call> calls;
  calls.reserve(pending.size());
  for (const auto& [key, n] : pending) {
    calls.push_back({{names_.stats(), names_.score(), names_.entry(key)},
                     {key, std::to_string(n), now_arg, scoring_args.policy, scoring_args.log_m}});
  }
  // Lost if the server is away: read counts only order eviction.
  return RunPipelined(RedisScripts::Get().touch, std::move(calls), "touch").status();
}

arrow::Result<std::optional<KeyUsage>> RedisIndex::ParseUsage(const redis::Reply& reply,
                                                              EntryMeta* latest) {
  if (reply.is_nil() || reply.elements.size() < 7) return std::nullopt;
  if (latest) {
    ARROW_ASSIGN_OR_RAISE(*latest, EntryFromJson(reply.elements[0].str));
  }
  const auto& u = reply.elements;
  KeyUsage usage;
  ARROW_ASSIGN_OR_RAISE(usage.bytes, ParseReplyInteger(u[1].str, "a key's bytes"));
  ARROW_ASSIGN_OR_RAISE(usage.cost_s, ParseReplyDouble(u[2].str, "a key's cost"));
  ARROW_ASSIGN_OR_RAISE(auto accesses, ParseReplyInteger(u[3].str, "a key's accesses"));
  usage.accesses = static_cast<uint64_t>(std::max<int64_t>(accesses, 0));
  ARROW_ASSIGN_OR_RAISE(usage.created_ms, ParseReplyInteger(u[4].str, "a key's creation"));
  ARROW_ASSIGN_OR_RAISE(usage.last_access_ms, ParseReplyInteger(u[5].str, "a key's last access"));
  ARROW_ASSIGN_OR_RAISE(usage.score, ParseReplyDouble(u[6].str, "a key's score"));
  return usage;
}

arrow::Result<std::optional<KeyUsage>> RedisIndex::Usage(const std::string& key) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().describe,
                                        {names_.entry(key), names_.score()}, {key}, "usage"));
  return ParseUsage(reply, nullptr);
}

arrow::Result<std::vector<IndexedKey>> RedisIndex::ListLatest(const std::string& prefix) {
  // Whether the index serves, and what it lists, in one round trip.
  ARROW_ASSIGN_OR_RAISE(auto first, Pipeline({{"HGET", names_.meta(), "ready"},
                                              {"ZRANGEBYLEX", names_.keys(), "[" + prefix,
                                               "[" + prefix + "\xff"}}));
  ARROW_ASSIGN_OR_RAISE(bool ready, Ready(first[0]));
  if (!ready) return IndexUnavailable("index " + Describe() + " is being rebuilt from storage");
  ARROW_RETURN_NOT_OK(ReplyError(first[1], "list"));
  std::vector<std::string> keys;
  std::vector<redis::Script::Call> calls;
  keys.reserve(first[1].elements.size());
  calls.reserve(first[1].elements.size());
  for (auto& item : first[1].elements) {
    calls.push_back({{names_.entry(item.str), names_.score()}, {item.str}});
    keys.push_back(std::move(item.str));
  }
  ARROW_ASSIGN_OR_RAISE(auto replies,
                        RunPipelined(RedisScripts::Get().describe, std::move(calls), "list"));
  std::vector<IndexedKey> out;
  out.reserve(replies.size());
  for (const auto& reply : replies) {
    IndexedKey item;
    ARROW_ASSIGN_OR_RAISE(auto usage, ParseUsage(reply, &item.latest));
    if (!usage) continue;  // removed meanwhile
    item.usage = *usage;
    out.push_back(std::move(item));
  }
  return out;
}

arrow::Result<std::vector<std::pair<std::string, KeyUsage>>> RedisIndex::LowestScored(
    int64_t offset, int64_t limit) {
  std::vector<std::pair<std::string, KeyUsage>> out;
  // ZRANGE reads a negative bound from the end: "0 -1" would be everything.
  if (limit <= 0) return out;
  offset = std::max<int64_t>(offset, 0);
  ARROW_ASSIGN_OR_RAISE(auto ranked, Command({"ZRANGE", names_.score(), std::to_string(offset),
                                              std::to_string(offset + limit - 1)}));
  std::vector<redis::Script::Call> calls;
  calls.reserve(ranked.elements.size());
  for (const auto& item : ranked.elements) {
    calls.push_back({{names_.entry(item.str), names_.score()}, {item.str}});
  }
  ARROW_ASSIGN_OR_RAISE(auto replies,
                        RunPipelined(RedisScripts::Get().describe, std::move(calls), "usage"));
  for (size_t i = 0; i < replies.size(); ++i) {
    ARROW_ASSIGN_OR_RAISE(auto usage, ParseUsage(replies[i], nullptr));
    if (usage) out.emplace_back(std::move(ranked.elements[i].str), *usage);
  }
  return out;
}

arrow::Result<std::map<std::string, std::string>> RedisIndex::GetSettings() {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"HGETALL", names_.settings()}));
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    out[std::move(reply.elements[i].str)] = std::move(reply.elements[i + 1].str);
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
                            {owner, endpoint, std::to_string(std::max<int64_t>(ttl_ms, 1))},
                            "lease"));
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
  auto holder = ParseLeaseValue(reply.elements[1].str, reply.elements[2].integer);
  if (holder) grant.holder = std::move(*holder);
  return grant;
}

arrow::Result<bool> RedisIndex::RenewLease(const LeaseRef& lease, int64_t ttl_ms) {
  ARROW_ASSIGN_OR_RAISE(
      auto reply,
      Run(RedisScripts::Get().lease_keep, {names_.lease(lease.name)},
          {std::to_string(lease.token), std::to_string(std::max<int64_t>(ttl_ms, 1))}, "lease"));
  return reply.integer == 1;
}

arrow::Status RedisIndex::ReleaseLease(const LeaseRef& lease) {
  return Run(RedisScripts::Get().lease_keep, {names_.lease(lease.name)},
             {std::to_string(lease.token), ""}, "lease")
      .status();
}

arrow::Result<std::optional<LeaseHolder>> RedisIndex::GetLease(const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline({{"GET", names_.lease(name)},
                                                {"PTTL", names_.lease(name)}}));
  if (replies.size() != 2 || replies[0].is_nil()) return std::nullopt;
  ARROW_RETURN_NOT_OK(ReplyError(replies[0], "lease"));
  return ParseLeaseValue(replies[0].str, replies[1].integer);
}

arrow::Status RedisIndex::Restore(const EntryMeta& entry, const ScoringPolicy& scoring) {
  // Like a publish, the script must be told the latest version's link sets; it refuses if
  // the latest changed meanwhile (another node restoring the same key). `describe` reads the
  // latest without asking whether the index is ready (it is not, while being rebuilt).
  for (int attempt = 0; attempt < kRestoreAttempts; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(auto current,
                          Run(RedisScripts::Get().describe,
                              {names_.entry(entry.key), names_.score()}, {entry.key}, "restore"));
    std::optional<EntryMeta> latest;
    if (!current.is_nil() && !current.elements.empty() && !current.elements[0].is_nil()) {
      ARROW_ASSIGN_OR_RAISE(latest, EntryFromJson(current.elements[0].str));
    }
    static const std::vector<std::string> kNone;
    auto call = VersionCall(entry, latest ? latest->depends_on : kNone,
                            latest ? latest->tags : kNone, scoring, {});
    call.args.push_back(latest ? latest->blob : "");
    ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().restore, std::move(call.keys),
                                          std::move(call.args), "restore"));
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
  ARROW_ASSIGN_OR_RAISE(bool ready, Ready(reply));
  return !ready;
}

arrow::Status RedisIndex::MarkRebuilt() {
  const int64_t now = Clock::System()->NowMillis();
  std::string secret;
  {
    std::lock_guard<std::mutex> lock(secret_mutex_);
    secret = secret_;  // kept, so that tickets signed with it stay good
  }
  ARROW_RETURN_NOT_OK(Run(RedisScripts::Get().mark_rebuilt, {names_.meta(), names_.stats()},
                          {std::to_string(now * 1000), options_.node, std::to_string(now),
                           std::move(secret)},
                          "mark rebuilt")
                          .status());
  MarkReady();
  return arrow::Status::OK();
}

arrow::Result<std::string> RedisIndex::ClusterSecret(bool refresh) {
  std::lock_guard<std::mutex> lock(secret_mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (!secret_.empty() && (!refresh || now - secret_read_ < kSecretRereadInterval)) {
    return secret_;
  }
  secret_read_ = now;  // attempts count: an unreachable index is not asked more often
  // Set once by whichever node comes first. A node that has one offers it again: an index
  // that lost its data gets back the secret the nodes sign with.
  const std::string candidate = secret_.empty() ? SecretHex(32) : secret_;
  ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline({{"HSETNX", names_.meta(), "secret", candidate},
                                                {"HGET", names_.meta(), "secret"}}));
  if (replies.size() != 2 || replies[1].is_nil() || replies[1].is_error() ||
      replies[1].str.empty()) {
    return arrow::Status::IOError("index: cannot read the cluster secret");
  }
  secret_ = std::move(replies[1].str);
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
