// RedisIndex: calls and health, entries, publication, removal, listing, generations.
// Use, settings, leases and announcements are in redis_index_usage.cc.
#include "index/redis_index.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/key.h"
#include "index/redis_scripts.h"

namespace quiver {

namespace {

constexpr size_t kBatch = 512;
constexpr int kRemoveAttempts = 32;

std::string Fmt(double x) { return fmt::format("{:.17g}", x); }

}  // namespace

RedisIndex::RedisIndex(RedisIndexOptions options)
    : options_(std::move(options)),
      names_(options_.prefix),
      pool_(options_.connect, options_.pool_size) {}

arrow::Result<std::shared_ptr<RedisIndex>> RedisIndex::Open(RedisIndexOptions options) {
  std::shared_ptr<RedisIndex> index(new RedisIndex(std::move(options)));
  auto pong = index->pool_.Command({"PING"});
  if (!pong.ok()) {
    if (!redis::IsRedisUnavailable(pong.status())) return pong.status();  // e.g. bad password
    index->SetHealth(IndexHealth{false, "unavailable", pong.status().message()});
  }
  index->touch_flusher_ = std::make_unique<PeriodicTask>(
      "index read counts", index->options_.touch_flush_interval, [raw = index.get()] {
        auto st = raw->FlushTouches();
        if (!st.ok()) spdlog::debug("sending read counts: {}", st.ToString());
      });
  return index;
}

RedisIndex::~RedisIndex() {
  if (touch_flusher_) touch_flusher_->Stop();
  (void)FlushTouches();
  if (subscriber_) subscriber_->Stop();
}

std::string RedisIndex::Describe() const {
  return options_.connect.url.Redacted() + " (prefix " + options_.prefix + ")";
}

void RedisIndex::SetHealth(IndexHealth health) {
  std::lock_guard<std::mutex> lock(health_mutex_);
  if (health.state == health_.state) {
    health_.detail = health.detail;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (health.available) {
    const double away = std::chrono::duration<double>(now - unavailable_since_).count();
    spdlog::warn("index {} is {} again after {:.1f} s", Describe(),
                 health.state == "ok" ? "available" : health.state, away);
  } else {
    if (health_.available) unavailable_since_ = now;
    spdlog::warn("index {} is {}: {}", Describe(),
                 health.state == "rebuilding" ? "being rebuilt (it lost its data)" : "unavailable",
                 health.detail);
  }
  health_ = std::move(health);
}

IndexHealth RedisIndex::Health() {
  std::lock_guard<std::mutex> lock(health_mutex_);
  return health_;
}

arrow::Status RedisIndex::Track(const arrow::Status& status) {
  if (status.ok()) {
    std::string state;
    {
      std::lock_guard<std::mutex> lock(health_mutex_);
      state = health_.state;
    }
    // Reachable again: whether it is usable depends on whether it kept its data. While it
    // is being rebuilt only a call that checks readiness says it is back.
    if (state == "unavailable") {
      auto ready = pool_.Command({"HGET", names_.meta(), "ready"});
      const bool rebuilding = ready.ok() && (ready->is_nil() || ready->str != "1");
      SetHealth(rebuilding ? IndexHealth{false, "rebuilding", "the index lost its data"}
                           : IndexHealth{});
    }
    return status;
  }
  if (redis::IsRedisUnavailable(status)) {
    SetHealth(IndexHealth{false, "unavailable", status.message()});
    return IndexUnavailable("index " + Describe() + " is unavailable: " + status.message());
  }
  return status;
}

arrow::Status RedisIndex::ReplyError(const redis::Reply& reply, const char* what) {
  if (!reply.is_error()) return arrow::Status::OK();
  if (reply.str.rfind("QUIVER_NOTREADY", 0) == 0) {
    SetHealth(IndexHealth{false, "rebuilding", "the index is being rebuilt from storage"});
    return IndexUnavailable("index " + Describe() + " is being rebuilt from storage");
  }
  return reply.ToStatus(std::string("index ") + what);
}

arrow::Result<redis::Reply> RedisIndex::Run(const redis::Script& script,
                                            const std::vector<std::string>& keys,
                                            const std::vector<std::string>& args) {
  auto reply = script.Run(&pool_, keys, args);
  ARROW_RETURN_NOT_OK(Track(reply.status()));
  return reply;
}

arrow::Result<redis::Reply> RedisIndex::Command(const std::vector<std::string>& argv) {
  auto reply = pool_.Command(argv);
  ARROW_RETURN_NOT_OK(Track(reply.status()));
  ARROW_RETURN_NOT_OK(ReplyError(*reply, argv.front().c_str()));
  return reply;
}

arrow::Result<std::vector<redis::Reply>> RedisIndex::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  auto replies = pool_.Pipeline(commands);
  ARROW_RETURN_NOT_OK(Track(replies.status()));
  return replies;
}

void RedisIndex::MarkReady() {
  {
    std::lock_guard<std::mutex> lock(health_mutex_);
    if (health_.state == "ok") return;
  }
  SetHealth(IndexHealth{});
}

arrow::Result<std::optional<EntryMeta>> RedisIndex::Get(const std::string& key,
                                                        std::optional<uint64_t> version) {
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Run(RedisScripts::Get().get, {names_.meta(), names_.entry(key)},
                            {version ? std::to_string(*version) : ""}));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "get"));
  MarkReady();
  if (reply.is_nil()) return std::nullopt;
  ARROW_ASSIGN_OR_RAISE(auto meta, EntryFromJson(reply.str));
  return meta;
}

arrow::Result<std::vector<std::optional<EntryMeta>>> RedisIndex::GetMany(
    const std::vector<std::pair<std::string, uint64_t>>& versions) {
  const auto& script = RedisScripts::Get().get;
  std::vector<std::optional<EntryMeta>> out;
  for (size_t start = 0; start < versions.size(); start += kBatch) {
    std::vector<std::vector<std::string>> commands;
    for (size_t i = start; i < std::min(versions.size(), start + kBatch); ++i) {
      commands.push_back(script.EvalShaCommand(
          {names_.meta(), names_.entry(versions[i].first)}, {std::to_string(versions[i].second)}));
    }
    ARROW_ASSIGN_OR_RAISE(auto replies, Pipeline(commands));
    for (size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_error() && replies[i].str.rfind("NOSCRIPT", 0) == 0) {
        // A restarted server: load the script once, then look this one up again.
        ARROW_ASSIGN_OR_RAISE(auto meta, Get(versions[start + i].first, versions[start + i].second));
        out.push_back(std::move(meta));
        continue;
      }
      ARROW_RETURN_NOT_OK(ReplyError(replies[i], "get"));
      if (replies[i].is_nil()) {
        out.push_back(std::nullopt);
        continue;
      }
      ARROW_ASSIGN_OR_RAISE(auto meta, EntryFromJson(replies[i].str));
      out.push_back(std::move(meta));
    }
  }
  return out;
}

void RedisIndex::AddLinkKeys(const EntryMeta* entry, std::vector<std::string>* keys) const {
  if (!entry) return;
  for (const auto& dep : entry->depends_on) keys->push_back(names_.dep(dep));
  for (const auto& tag : entry->tags) keys->push_back(names_.tag(tag));
}

arrow::Result<std::vector<EntryMeta>> RedisIndex::ParseMetas(const redis::Reply& reply,
                                                             size_t from) {
  std::vector<EntryMeta> out;
  for (size_t i = from; i < reply.elements.size(); ++i) {
    if (reply.elements[i].is_nil()) continue;
    ARROW_ASSIGN_OR_RAISE(auto meta, EntryFromJson(reply.elements[i].str));
    out.push_back(std::move(meta));
  }
  std::sort(out.begin(), out.end(),
            [](const EntryMeta& a, const EntryMeta& b) { return a.version < b.version; });
  return out;
}

arrow::Result<PublishOutcome> RedisIndex::Publish(const PublishRequest& r) {
  const EntryMeta& e = r.entry;
  ARROW_ASSIGN_OR_RAISE(auto latest, Get(e.key, std::nullopt));
  PublishOutcome outcome;
  const uint64_t current = latest ? latest->version : 0;
  if (current != r.expected_version || (latest ? latest->blob : "") != r.expected_blob) {
    outcome.refusal = Refusal::kVersionConflict;
    outcome.current_version = current;
    outcome.detail = std::to_string(current);
    return outcome;
  }
  std::vector<std::string> keys = {names_.meta(),  names_.stats(), names_.entry(e.key),
                                   names_.keys(),  names_.score(), names_.gen(),
                                   names_.lease(r.lease ? r.lease->name : "-")};
  AddLinkKeys(&e, &keys);
  AddLinkKeys(latest ? &*latest : nullptr, &keys);
  std::vector<std::string> args = {
      e.key, std::to_string(e.version), e.blob, EntryToJson(e), std::to_string(e.bytes),
      std::to_string(r.expected_version), r.expected_blob,
      std::to_string(std::max<int64_t>(r.keep_versions, 1)), r.bump_key ? "1" : "0",
      std::to_string(r.since.counter), r.lease ? std::to_string(r.lease->token) : "",
      r.budget ? std::to_string(r.budget->cache_size) : "",
      r.budget ? std::to_string(r.budget->max_entries) : "0",
      r.budget && r.budget->allow_one_over ? "1" : "0", PolicyArg(r.scoring), LogMArg(r.scoring),
      Fmt(e.cost_ms / 1000.0), std::to_string(e.created_ms), std::to_string(e.expires_ms),
      std::to_string(e.depends_on.size()), std::to_string(e.tags.size()),
      std::to_string(latest ? latest->depends_on.size() : 0),
      std::to_string(latest ? latest->tags.size() : 0), std::to_string(options_.max_generations)};
  args.insert(args.end(), r.watched.begin(), r.watched.end());
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().publish, keys, args));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "publish"));
  const std::string verdict = reply.elements.empty() ? "" : reply.elements[0].str;
  const std::string detail = reply.elements.size() > 1 ? reply.elements[1].str : "";
  if (verdict == "ok") {
    ARROW_ASSIGN_OR_RAISE(outcome.trimmed, ParseMetas(reply, 1));
    std::lock_guard<std::mutex> lock(touch_mutex_);
    scoring_ = r.scoring;
    return outcome;
  }
  outcome.detail = detail;
  if (verdict == "conflict") {
    outcome.refusal = Refusal::kVersionConflict;
    outcome.current_version = std::strtoull(detail.c_str(), nullptr, 10);
  } else if (verdict == "stale") {
    outcome.refusal = Refusal::kStaleGeneration;
    outcome.detail = detail.size() > 2 ? detail.substr(2) : "";
  } else if (verdict == "lease") {
    outcome.refusal = Refusal::kLeaseLost;
    outcome.detail = detail.empty() ? "expired" : "held by " + detail;
  } else if (verdict == "budget") {
    outcome.refusal = Refusal::kOverBudget;
  } else {
    return arrow::Status::IOError("index publish: unexpected reply ", reply.DebugString());
  }
  return outcome;
}

arrow::Result<std::vector<EntryMeta>> RedisIndex::RemoveOnce(const RemoveRequest& request,
                                                             const std::optional<EntryMeta>& latest,
                                                             bool* conflict) {
  std::vector<std::string> keys = {names_.meta(), names_.stats(), names_.entry(request.key),
                                   names_.keys(), names_.score(), names_.gen()};
  AddLinkKeys(latest ? &*latest : nullptr, &keys);
  std::vector<std::string> args = {
      request.key,
      latest ? latest->blob : "",
      request.bump_key ? "1" : "0",
      request.only_if_expired_at ? std::to_string(*request.only_if_expired_at) : "",
      request.only_if_blob.value_or(""),
      std::to_string(latest ? latest->depends_on.size() : 0),
      std::to_string(latest ? latest->tags.size() : 0),
      std::to_string(options_.max_generations)};
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().remove, keys, args));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "remove"));
  *conflict = !reply.elements.empty() && reply.elements[0].str == "conflict";
  return ParseMetas(reply, 1);
}

arrow::Result<std::vector<EntryMeta>> RedisIndex::Remove(const RemoveRequest& request) {
  // The script must be told the latest version's dependency and tag sets; a version
  // published between the read and the script is a conflict, read again.
  for (int attempt = 0; attempt < kRemoveAttempts; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(auto latest, Get(request.key, std::nullopt));
    bool conflict = false;
    ARROW_ASSIGN_OR_RAISE(auto removed, RemoveOnce(request, latest, &conflict));
    if (!conflict) return removed;
  }
  return arrow::Status::IOError("index remove of '", request.key, "': kept changing under ",
                                kRemoveAttempts, " attempts");
}

arrow::Result<std::vector<EntryMeta>> RedisIndex::Trim(const std::string& key, int64_t keep) {
  ScoringPolicy scoring;
  {
    std::lock_guard<std::mutex> lock(touch_mutex_);
    scoring = scoring_;
  }
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Run(RedisScripts::Get().trim,
                            {names_.stats(), names_.entry(key), names_.score()},
                            {key, std::to_string(keep), PolicyArg(scoring)}));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "trim"));
  return ParseMetas(reply, 0);
}

arrow::Result<std::vector<std::string>> RedisIndex::KeysUnder(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"ZRANGEBYLEX", names_.keys(), "[" + prefix,
                                             "[" + prefix + "\xff"}));
  std::vector<std::string> out;
  for (const auto& item : reply.elements) {
    if (KeyHasSegmentPrefix(item.str, prefix)) out.push_back(item.str);
  }
  return out;
}

arrow::Result<IndexStats> RedisIndex::Stats() {
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Command({"HMGET", names_.stats(), "keys", "versions", "bytes"}));
  IndexStats stats;
  auto field = [&](size_t i) {
    return i < reply.elements.size() && !reply.elements[i].is_nil()
               ? std::stoll(reply.elements[i].str)
               : 0;
  };
  stats.keys = field(0);
  stats.versions = field(1);
  stats.bytes = field(2);
  return stats;
}

arrow::Result<GenerationSnapshot> RedisIndex::Snapshot() {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"HGET", names_.stats(), "gen"}));
  return GenerationSnapshot{reply.is_nil() ? 0 : std::stoull(reply.str)};
}

arrow::Result<std::vector<std::string>> RedisIndex::BumpAndCollect(
    const std::vector<std::string>& keys, const std::vector<std::string>& tags) {
  std::vector<std::string> redis_keys = {names_.meta(), names_.stats(), names_.gen()};
  std::vector<std::string> args = {std::to_string(options_.max_generations)};
  for (const auto& key : keys) {
    redis_keys.push_back(names_.dep(key));
    args.push_back(KeyGeneration(key));
  }
  for (const auto& tag : tags) {
    redis_keys.push_back(names_.tag(tag));
    args.push_back(TagGeneration(tag));
  }
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().bump_and_collect, redis_keys, args));
  ARROW_RETURN_NOT_OK(ReplyError(reply, "bump"));
  std::set<std::string> found;
  for (const auto& item : reply.elements) found.insert(item.str);
  return std::vector<std::string>(found.begin(), found.end());
}

arrow::Result<std::vector<std::string>> RedisIndex::Dependents(const std::string& key) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"SMEMBERS", names_.dep(key)}));
  std::set<std::string> found;
  for (const auto& item : reply.elements) found.insert(item.str);
  return std::vector<std::string>(found.begin(), found.end());
}

arrow::Result<std::vector<std::string>> RedisIndex::KeysWithTag(const std::string& tag) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"SMEMBERS", names_.tag(tag)}));
  std::set<std::string> found;
  for (const auto& item : reply.elements) found.insert(item.str);
  return std::vector<std::string>(found.begin(), found.end());
}

}  // namespace quiver
