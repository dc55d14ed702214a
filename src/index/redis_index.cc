// RedisIndex: calls and health, entries, publication, removal, listing, generations.
// Use, settings, leases and announcements are in redis_index_usage.cc.
#include "index/redis_index.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/key.h"
#include "index/redis_scripts.h"

namespace quiver {

namespace {

// Runs per pipeline: bounds what one round trip carries.
constexpr size_t kBatch = 512;
// Idle connections kept for the node's calls.
constexpr size_t kMaxIdleConnections = 16;
constexpr int kRemoveAttempts = 32;

const char* HealthName(int state) {
  static const char* kNames[] = {"ok", "unavailable", "rebuilding"};
  return kNames[state];
}

// The strings of an array reply, sorted (callers promise them in order).
std::vector<std::string> SortedStrings(redis::Reply reply) {
  std::vector<std::string> out;
  out.reserve(reply.elements.size());
  for (auto& item : reply.elements) out.push_back(std::move(item.str));
  std::sort(out.begin(), out.end());
  return out;
}

arrow::Result<std::optional<EntryMeta>> OptionalEntry(const redis::Reply& reply) {
  if (reply.is_nil()) return std::nullopt;
  ARROW_ASSIGN_OR_RAISE(auto meta, EntryFromJson(reply.str));
  return meta;
}

// Whether `latest` meets the conditions of `request` (index.h: RemoveRequest).
bool RemovableNow(const RemoveRequest& request, const EntryMeta& latest) {
  if (request.only_if_expired_at && !latest.expired(*request.only_if_expired_at)) return false;
  return !request.only_if_blob || latest.blob == *request.only_if_blob;
}

}  // namespace

RedisIndex::RedisIndex(RedisIndexOptions options)
    : options_(std::move(options)),
      names_(options_.prefix),
      pool_(options_.connect, kMaxIdleConnections) {}

arrow::Result<std::shared_ptr<RedisIndex>> RedisIndex::Open(RedisIndexOptions options) {
  std::shared_ptr<RedisIndex> index(new RedisIndex(std::move(options)));
  auto pong = index->pool_.Command({"PING"});
  if (!pong.ok()) {
    if (!redis::IsRedisUnavailable(pong.status())) return pong.status();  // e.g. bad password
    index->SetHealth(HealthState::kUnavailable, pong.status().message());
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

void RedisIndex::SetHealth(HealthState state, std::string detail) {
  std::lock_guard<std::mutex> lock(health_mutex_);
  const HealthState before = health_state_.load();
  health_detail_ = std::move(detail);
  if (state == before) return;
  const auto now = std::chrono::steady_clock::now();
  if (state == HealthState::kOk) {
    const double away = std::chrono::duration<double>(now - unavailable_since_).count();
    spdlog::warn("index {} is available again after {:.1f} s", Describe(), away);
  } else {
    if (before == HealthState::kOk) unavailable_since_ = now;
    spdlog::warn("index {} is {}: {}", Describe(),
                 state == HealthState::kRebuilding ? "being rebuilt (it lost its data)"
                                                   : "unavailable",
                 health_detail_);
  }
  health_state_.store(state);
}

IndexHealth RedisIndex::Health() {
  std::lock_guard<std::mutex> lock(health_mutex_);
  const HealthState state = health_state_.load();
  return IndexHealth{state == HealthState::kOk, HealthName(static_cast<int>(state)),
                     health_detail_};
}

void RedisIndex::RecheckReadiness() {
  auto ready = pool_.Command({"HGET", names_.meta(), "ready"});
  if (!ready.ok()) {
    // Gone again: still unavailable (the call that succeeded keeps its result).
    SetHealth(HealthState::kUnavailable, ready.status().message());
    return;
  }
  if (ready->is_error()) {
    SetHealth(HealthState::kUnavailable, "cannot read the index's state: " + ready->str);
    return;
  }
  if (ready->str == "1") {
    SetHealth(HealthState::kOk, "");
  } else {
    SetHealth(HealthState::kRebuilding, "the index lost its data");
  }
}

arrow::Status RedisIndex::Track(const arrow::Status& status) {
  if (status.ok()) {
    // While it is being rebuilt only a call that checks readiness says it is back.
    if (health_state_.load() == HealthState::kUnavailable) RecheckReadiness();
    return status;
  }
  if (redis::IsRedisUnavailable(status)) {
    SetHealth(HealthState::kUnavailable, status.message());
    return IndexUnavailable("index " + Describe() + " is unavailable: " + status.message());
  }
  return status;
}

arrow::Status RedisIndex::ReplyError(const redis::Reply& reply, const char* what) {
  if (!reply.is_error()) return arrow::Status::OK();
  if (reply.str.starts_with("QUIVER_NOTREADY")) {
    SetHealth(HealthState::kRebuilding, "the index is being rebuilt from storage");
    return IndexUnavailable("index " + Describe() + " is being rebuilt from storage");
  }
  return reply.ToStatus(std::string("index ") + what);
}

arrow::Result<redis::Reply> RedisIndex::Run(const redis::Script& script,
                                            std::vector<std::string> keys,
                                            std::vector<std::string> args, const char* what) {
  auto reply = script.Run(&pool_, std::move(keys), std::move(args));
  ARROW_RETURN_NOT_OK(Track(reply.status()));
  ARROW_RETURN_NOT_OK(ReplyError(*reply, what));
  return reply;
}

arrow::Result<std::vector<redis::Reply>> RedisIndex::RunPipelined(
    const redis::Script& script, std::vector<redis::Script::Call> calls, const char* what) {
  std::vector<redis::Reply> out;
  out.reserve(calls.size());
  for (size_t start = 0; start < calls.size(); start += kBatch) {
    const size_t end = std::min(calls.size(), start + kBatch);
    std::vector<redis::Script::Call> batch(std::make_move_iterator(calls.begin() + start),
                                           std::make_move_iterator(calls.begin() + end));
    auto replies = script.RunPipelined(&pool_, std::move(batch));
    ARROW_RETURN_NOT_OK(Track(replies.status()));
    for (auto& reply : *replies) {
      ARROW_RETURN_NOT_OK(ReplyError(reply, what));
      out.push_back(std::move(reply));
    }
  }
  return out;
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
  if (health_state_.load() != HealthState::kOk) SetHealth(HealthState::kOk, "");
}

arrow::Result<bool> RedisIndex::Ready(const redis::Reply& reply) {
  ARROW_RETURN_NOT_OK(ReplyError(reply, "HGET"));
  if (reply.is_nil() || reply.str != "1") {
    SetHealth(HealthState::kRebuilding, "the index lost its data");
    return false;
  }
  MarkReady();
  return true;
}

arrow::Result<std::optional<EntryMeta>> RedisIndex::Get(const std::string& key,
                                                        std::optional<uint64_t> version) {
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Run(RedisScripts::Get().get, {names_.meta(), names_.entry(key)},
                            {version ? std::to_string(*version) : ""}, "get"));
  MarkReady();
  return OptionalEntry(reply);
}

arrow::Result<std::vector<std::optional<EntryMeta>>> RedisIndex::GetMany(
    const std::vector<std::pair<std::string, uint64_t>>& versions) {
  std::vector<redis::Script::Call> calls;
  calls.reserve(versions.size());
  for (const auto& [key, version] : versions) {
    calls.push_back({{names_.meta(), names_.entry(key)}, {std::to_string(version)}});
  }
  ARROW_ASSIGN_OR_RAISE(auto replies,
                        RunPipelined(RedisScripts::Get().get, std::move(calls), "get"));
  std::vector<std::optional<EntryMeta>> out;
  out.reserve(replies.size());
  for (const auto& reply : replies) {
    ARROW_ASSIGN_OR_RAISE(auto meta, OptionalEntry(reply));
    out.push_back(std::move(meta));
  }
  if (!replies.empty()) MarkReady();
  return out;
}

void RedisIndex::AddLinkKeys(const std::vector<std::string>& depends_on,
                             const std::vector<std::string>& tags,
                             std::vector<std::string>* keys) const {
  for (const auto& dep : depends_on) keys->push_back(names_.dep(dep));
  for (const auto& tag : tags) keys->push_back(names_.tag(tag));
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

redis::Script::Call RedisIndex::VersionCall(const EntryMeta& e,
                                            const std::vector<std::string>& old_depends_on,
                                            const std::vector<std::string>& old_tags,
                                            const ScoringPolicy& scoring,
                                            std::initializer_list<std::string> own_keys) const {
  const size_t new_links = e.depends_on.size() + e.tags.size();
  const size_t old_links = old_depends_on.size() + old_tags.size();
  redis::Script::Call call;
  auto& keys = call.keys;
  keys.reserve(5 + own_keys.size() + new_links + old_links);
  keys.push_back(names_.meta());
  keys.push_back(names_.stats());
  keys.push_back(names_.entry(e.key));
  keys.push_back(names_.keys());
  keys.push_back(names_.score());
  keys.insert(keys.end(), own_keys);
  AddLinkKeys(e.depends_on, e.tags, &keys);
  AddLinkKeys(old_depends_on, old_tags, &keys);
  // Moved in one by one: a braced list would copy each string (the JSON too).
  ScoringArgs scoring_args(scoring);
  auto& args = call.args;
  args.reserve(24);
  args.push_back(e.key);
  args.push_back(std::to_string(e.version));
  args.push_back(e.blob);
  args.push_back(EntryToJson(e));
  args.push_back(std::to_string(e.bytes));
  args.push_back(ScriptNumber(e.cost_ms / 1000.0));
  args.push_back(std::to_string(e.created_ms));
  args.push_back(std::to_string(e.expires_ms));
  args.push_back(std::to_string(new_links));
  args.push_back(std::to_string(old_links));
  args.push_back(std::move(scoring_args.policy));
  args.push_back(std::move(scoring_args.log_m));
  return call;
}

arrow::Result<redis::Reply> RedisIndex::RunPublish(const PublishRequest& r,
                                                   const std::vector<std::string>& old_depends_on,
                                                   const std::vector<std::string>& old_tags) {
  auto call = VersionCall(r.entry, old_depends_on, old_tags, r.scoring,
                          {names_.gen(), names_.lease(r.lease ? r.lease->name : "-")});
  call.args.reserve(call.args.size() + 13 + r.watched.size());
  call.args.insert(call.args.end(),
                   {std::to_string(r.expected_version), r.expected_blob,
                    std::to_string(std::max<int64_t>(r.keep_versions, 1)), r.bump_key ? "1" : "0",
                    std::to_string(r.since.counter),
                    r.lease ? std::to_string(r.lease->token) : "",
                    r.budget ? std::to_string(r.budget->cache_size) : "",
                    r.budget ? std::to_string(r.budget->max_entries) : "0",
                    r.budget && r.budget->allow_one_over ? "1" : "0",
                    std::to_string(options_.max_generations),
                    r.tenant_budget ? std::to_string(r.tenant_budget->cache_size) : "",
                    r.tenant_budget ? std::to_string(r.tenant_budget->max_entries) : "0",
                    r.tenant_budget && r.tenant_budget->allow_one_over ? "1" : "0"});
  call.args.insert(call.args.end(), r.watched.begin(), r.watched.end());
  return Run(RedisScripts::Get().publish, std::move(call.keys), std::move(call.args), "publish");
}

arrow::Result<PublishOutcome> RedisIndex::Publish(const PublishRequest& r) {
  // The script moves the key out of the link sets of the version it replaces, which the
  // request names (the compare-and-set on that version makes them current); it checks them.
  ARROW_ASSIGN_OR_RAISE(auto reply, RunPublish(r, r.expected_depends_on, r.expected_tags));
  if (!reply.elements.empty() && reply.elements[0].str == "links") {
    return arrow::Status::Invalid("publish of '", r.entry.key, "': the request names other "
                                  "depends_on/tags than version ", r.expected_version,
                                  " has (PublishRequest::expected_depends_on/expected_tags)");
  }
  ARROW_ASSIGN_OR_RAISE(auto outcome, ParsePublishReply(reply));
  if (outcome.published()) {
    std::lock_guard<std::mutex> lock(touch_mutex_);
    UseScoringLocked(r.scoring);
  }
  return outcome;
}

arrow::Result<PublishOutcome> RedisIndex::ParsePublishReply(const redis::Reply& reply) {
  PublishOutcome outcome;
  const std::string verdict = reply.elements.empty() ? "" : reply.elements[0].str;
  const std::string detail = reply.elements.size() > 1 ? reply.elements[1].str : "";
  if (verdict == "ok") {
    ARROW_ASSIGN_OR_RAISE(outcome.trimmed, ParseMetas(reply, 1));
    return outcome;
  }
  outcome.detail = detail;
  if (verdict == "conflict") {
    outcome.refusal = Refusal::kVersionConflict;
    ARROW_ASSIGN_OR_RAISE(auto current, ParseReplyInteger(detail, "the current version"));
    outcome.current_version = static_cast<uint64_t>(current);
  } else if (verdict == "stale") {
    outcome.refusal = Refusal::kStaleGeneration;
    outcome.detail = detail.size() > 2 ? detail.substr(2) : "";  // without "k:" / "t:"
  } else if (verdict == "lease") {
    outcome.refusal = Refusal::kLeaseLost;
    // Worded as the embedded index words it.
    auto holder = ParseLeaseValue(detail, 0);
    outcome.detail = holder ? fmt::format("held by {} with token {}", holder->owner,
                                          holder->token)
                            : detail.empty() ? "expired" : "held by " + detail;
  } else if (verdict == "budget") {
    outcome.refusal = Refusal::kOverBudget;
  } else {
    return arrow::Status::IOError("index publish: unexpected reply ", reply.DebugString());
  }
  return outcome;
}

void RedisIndex::UseScoringLocked(const ScoringPolicy& scoring) {
  // Compared first: on the read path it almost never changes, and a copy allocates.
  if (scoring_.half_life != scoring.half_life || scoring_.name != scoring.name) {
    scoring_ = scoring;
  }
}

arrow::Result<std::vector<EntryMeta>> RedisIndex::RemoveOnce(const RemoveRequest& request,
                                                             const std::optional<EntryMeta>& latest,
                                                             bool* conflict) {
  std::vector<std::string> keys = {names_.meta(), names_.stats(), names_.entry(request.key),
                                   names_.keys(), names_.score(), names_.gen()};
  if (latest) AddLinkKeys(latest->depends_on, latest->tags, &keys);
  std::vector<std::string> args = {
      request.key,
      latest ? latest->blob : "",
      request.bump_key ? "1" : "0",
      request.only_if_expired_at ? std::to_string(*request.only_if_expired_at) : "",
      request.only_if_blob.value_or(""),
      std::to_string(latest ? latest->depends_on.size() : 0),
      std::to_string(latest ? latest->tags.size() : 0),
      std::to_string(options_.max_generations)};
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().remove, std::move(keys),
                                        std::move(args), "remove"));
  *conflict = !reply.elements.empty() && reply.elements[0].str == "conflict";
  return ParseMetas(reply, 1);
}

arrow::Result<std::vector<EntryMeta>> RedisIndex::Remove(const RemoveRequest& request) {
  // The script must be told the latest version's dependency and tag sets; a version
  // published between the read and the script is a conflict, read again.
  for (int attempt = 0; attempt < kRemoveAttempts; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(auto latest, Get(request.key, std::nullopt));
    // Nothing to do as of that read -- a latest that fails the conditions, or no key and no
    // generation to bump -- is nothing to do: no script.
    if (latest ? !RemovableNow(request, *latest) : !request.bump_key) {
      return std::vector<EntryMeta>{};
    }
    bool conflict = false;
    ARROW_ASSIGN_OR_RAISE(auto removed, RemoveOnce(request, latest, &conflict));
    if (!conflict) return removed;
  }
  return arrow::Status::IOError("index remove of '", request.key, "': kept changing under ",
                                kRemoveAttempts, " attempts");
}

arrow::Result<std::vector<EntryMeta>> RedisIndex::Trim(const std::string& key, int64_t keep) {
  std::string policy;
  {
    std::lock_guard<std::mutex> lock(touch_mutex_);
    policy = ScoringArgs(scoring_).policy;
  }
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Run(RedisScripts::Get().trim,
                            {names_.stats(), names_.entry(key), names_.score()},
                            {key, std::to_string(keep), std::move(policy)}, "trim"));
  return ParseMetas(reply, 0);
}

arrow::Result<std::vector<std::string>> RedisIndex::KeysUnder(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"ZRANGEBYLEX", names_.keys(), "[" + prefix,
                                             "[" + prefix + "\xff"}));
  std::vector<std::string> out;
  for (auto& item : reply.elements) {
    if (KeyHasSegmentPrefix(item.str, prefix)) out.push_back(std::move(item.str));
  }
  return out;
}

arrow::Result<IndexStats> RedisIndex::Stats() {
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        Command({"HMGET", names_.stats(), "keys", "versions", "bytes"}));
  int64_t fields[3] = {0, 0, 0};
  for (size_t i = 0; i < 3 && i < reply.elements.size(); ++i) {
    if (reply.elements[i].is_nil()) continue;
    ARROW_ASSIGN_OR_RAISE(fields[i], ParseReplyInteger(reply.elements[i].str, "a total"));
  }
  return IndexStats{fields[0], fields[1], fields[2]};
}

arrow::Result<IndexStats> RedisIndex::TenantStats(const std::string& tenant) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"HMGET", names_.stats(), "tk:" + tenant,
                                             "tb:" + tenant}));
  int64_t fields[2] = {0, 0};
  for (size_t i = 0; i < 2 && i < reply.elements.size(); ++i) {
    if (reply.elements[i].is_nil()) continue;
    ARROW_ASSIGN_OR_RAISE(fields[i], ParseReplyInteger(reply.elements[i].str, "a total"));
  }
  return IndexStats{fields[0], 0, fields[1]};
}

arrow::Result<GenerationSnapshot> RedisIndex::Snapshot() {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"HGET", names_.stats(), "gen"}));
  if (reply.is_nil()) return GenerationSnapshot{0};
  ARROW_ASSIGN_OR_RAISE(auto counter, ParseReplyInteger(reply.str, "the generation counter"));
  return GenerationSnapshot{static_cast<uint64_t>(counter)};
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
  ARROW_ASSIGN_OR_RAISE(auto reply, Run(RedisScripts::Get().bump_and_collect,
                                        std::move(redis_keys), std::move(args), "bump"));
  return SortedStrings(std::move(reply));  // the script returns each key once
}

arrow::Result<std::vector<std::string>> RedisIndex::Dependents(const std::string& key) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"SMEMBERS", names_.dep(key)}));
  return SortedStrings(std::move(reply));
}

arrow::Result<std::vector<std::string>> RedisIndex::KeysWithTag(const std::string& tag) {
  ARROW_ASSIGN_OR_RAISE(auto reply, Command({"SMEMBERS", names_.tag(tag)}));
  return SortedStrings(std::move(reply));
}

}  // namespace quiver
