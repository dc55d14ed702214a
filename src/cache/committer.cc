#include "cache/committer.h"

#include <spdlog/spdlog.h>

#include "common/rejection.h"

namespace quiver {

namespace {

// Rounds of "make room, publish" before a writer that keeps losing the room to others
// publishes anyway, at most one entry past the limits.
constexpr int kRoomAttempts = 8;

class RefusalDetail final : public arrow::StatusDetail {
 public:
  explicit RefusalDetail(Refusal refusal) : refusal_(refusal) {}
  const char* type_id() const override { return kTypeId; }
  std::string ToString() const override { return "publish refused"; }
  Refusal refusal() const { return refusal_; }
  static constexpr const char* kTypeId = "quiver::cache::refusal";

 private:
  Refusal refusal_;
};

arrow::Status Explain(const PublishOutcome& outcome, const EntryMeta& entry,
                      const CommitRequest& request) {
  switch (outcome.refusal) {
    case Refusal::kVersionConflict:
      return arrow::Status::AlreadyExists(
          "version conflict: '", entry.key, "' is at version ", outcome.current_version,
          request.if_version ? ", not " + std::to_string(*request.if_version) : std::string());
    case Refusal::kStaleGeneration:
      if (outcome.detail.empty()) {
        return arrow::Status::Cancelled("not committed: '", entry.key,
                                        "' took too long to be checked against invalidations;"
                                        " nothing was stored");
      }
      return arrow::Status::Cancelled("not committed: ", outcome.detail,
                                      " was invalidated while '", entry.key,
                                      "' was being computed; nothing was stored");
    case Refusal::kLeaseLost:
      return arrow::Status::Cancelled("not committed: the fill lease of '", entry.key,
                                      "' was lost (fenced; ", outcome.detail,
                                      "); nothing was stored");
    case Refusal::kOverBudget:
      return Reject(arrow::Status::CapacityError("not admitted: '", entry.key,
                                                 "' found no room in the budget (",
                                                 outcome.detail, ")"),
                    RejectionKind::kNotAdmitted);
    case Refusal::kNone:
      break;
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Status RefusalStatus(const PublishOutcome& outcome, const EntryMeta& entry,
                            const CommitRequest& request) {
  auto st = Explain(outcome, entry, request);
  if (st.ok() || outcome.refusal == Refusal::kOverBudget) return st;  // carries a Rejection
  return st.WithDetail(std::make_shared<RefusalDetail>(outcome.refusal));
}

std::optional<Refusal> RefusalOf(const arrow::Status& status) {
  if (auto rejection = RejectionOf(status);
      rejection && rejection->kind() == RejectionKind::kNotAdmitted) {
    return Refusal::kOverBudget;
  }
  if (status.ok() || !status.detail() ||
      std::string(status.detail()->type_id()) != RefusalDetail::kTypeId) {
    return std::nullopt;
  }
  return static_cast<const RefusalDetail&>(*status.detail()).refusal();
}

arrow::Result<PublishOutcome> Committer::PublishWithRoom(EntryMeta* entry,
                                                         const CommitRequest& request,
                                                         bool* unclear) {
  PublishRequest publish;
  publish.keep_versions = request.keep_versions;
  publish.bump_key = request.replaces;
  for (const auto& dep : request.depends_on) publish.watched.push_back(KeyGeneration(dep));
  for (const auto& tag : request.tags) publish.watched.push_back(TagGeneration(tag));
  publish.watched.insert(publish.watched.end(), request.also_watched.begin(),
                         request.also_watched.end());
  publish.since = request.since;
  publish.lease = request.lease;
  publish.scoring = evictor_->scoring();
  PublishOutcome outcome;
  for (int attempt = 0; attempt < kRoomAttempts; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(auto latest, entries_->index()->Get(entry->key, std::nullopt));
    const bool new_key = !latest.has_value();
    ARROW_RETURN_NOT_OK(evictor_->MakeRoom(*entry, entry->bytes, new_key, request.keep));
    publish.budget = evictor_->Limits(/*allow_one_over=*/attempt + 1 == kRoomAttempts);
    publish.tenant_budget =
        evictor_->TenantLimits(EntryTenant(*entry),
                               /*allow_one_over=*/attempt + 1 == kRoomAttempts);
    auto published =
        entries_->Publish(entry, publish, request.if_version, request.if_blob, std::move(latest),
                          unclear);
    evictor_->Release(entry->bytes, new_key);
    ARROW_ASSIGN_OR_RAISE(outcome, std::move(published));
    if (outcome.published() && publish.budget->allow_one_over) {
      // Published past the limits after losing every race for room: evict back under them.
      spdlog::info("{}@{} was published past the budget after losing {} races for room to "
                   "other writers; evicting back under it", entry->key, entry->version,
                   kRoomAttempts - 1);
      auto back = evictor_->MakeRoom(*entry, 0, /*new_key=*/false);
      evictor_->Release(0, false);
      if (!back.ok()) spdlog::warn("evicting back under the budget: {}", back.ToString());
    }
    if (outcome.refusal != Refusal::kOverBudget) break;
  }
  return outcome;
}

arrow::Result<EntryMeta> Committer::Commit(EntryMeta entry, const CommitRequest& request) {
  entry.depends_on = request.depends_on;
  entry.tags = request.tags;
  auto admitted = evictor_->Admit(entry);
  bool unclear = false;
  auto outcome = admitted.ok() ? PublishWithRoom(&entry, request, &unclear)
                               : arrow::Result<PublishOutcome>(admitted);
  if (!outcome.ok() || !outcome->published()) {
    // After an unclear answer from the index the entry may be published: its files stay
    // (the sweep removes them if it is not).
    if (!unclear) entries_->Discard(entry);
    if (!outcome.ok()) return outcome.status();
    if (outcome->refusal == Refusal::kOverBudget) evictor_->CountNotAdmitted();
    return RefusalStatus(*outcome, entry, request);
  }
  if (request.replaces) {
    // The publish bumped the key, so nothing computed from the previous version publishes
    // from now on; what was published before goes here. Failing that, the client must know
    // both that its version is stored and that stale results may remain.
    auto st = invalidator_->InvalidateDependents(entry.key, "new version of");
    if (!st.ok()) {
      return st.WithMessage("'", entry.key, "' was stored as version ", entry.version,
                            ", but removing what was computed from the previous version "
                            "failed (invalidate '", entry.key, "' to retry): ", st.message());
    }
  }
  return entry;
}

}  // namespace quiver
