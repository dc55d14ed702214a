// A GoogleTest fixture that opens an Engine over an in-memory (or given) store and an embedded
// index, with a manual clock, and helpers to put and read objects.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "cache/engine.h"
#include "common/testing.h"
#include "index/embedded_index.h"
#include "storage/memory_blob_store.h"

namespace quiver {

/// `n` rows of one int64 column "x" (0, 1, ...).
inline std::shared_ptr<arrow::RecordBatch> Rows(int64_t n, int64_t start = 0) {
  arrow::Int64Builder b;
  for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(b.Append(start + i).ok());
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("x", arrow::int64())}), n,
                                  {*b.Finish()});
}

class EngineTest : public ::testing::Test {
 protected:
  /// \brief (Re)open the engine; a null store keeps the current one (a new in-memory store
  /// the first time). Background tasks are off unless the options ask.
  void Open(EngineOptions options = {}, std::shared_ptr<BlobStore> store = nullptr) {
    engine_.reset();
    if (store) store_ = store;
    if (!store_) store_ = std::make_shared<MemoryBlobStore>();
    options.store = store_;
    if (!options.index) options.index = std::make_shared<EmbeddedIndex>(clock_);
    options.clock = clock_;
    if (options.node_id == "local") options.node_id = "test-node";
    options.usage_save_interval_s = 0;
    options.reclaim_interval_s = 0;
    options.shared.sweep_interval_s = 0;
    auto engine = Engine::Open(std::move(options));
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    cache_ = engine_->objects();
    admin_ = engine_->management();
  }

  arrow::Result<EntryMeta> Put(const std::string& key, int64_t rows,
                               std::vector<std::string> deps = {},
                               std::vector<std::string> tags = {},
                               std::optional<uint64_t> if_version = std::nullopt) {
    PutOptions o;
    o.depends_on = std::move(deps);
    o.tags = std::move(tags);
    o.if_version = if_version;
    ARROW_ASSIGN_OR_RAISE(auto k, ObjectKey::Parse(key));
    ARROW_ASSIGN_OR_RAISE(auto w, cache_->BeginPut(k, Rows(1)->schema(), o));
    ARROW_RETURN_NOT_OK(w->Write(*Rows(rows)));
    return w->Commit();
  }
  bool Has(const std::string& key) {
    return cache_->Peek(*ObjectKey::Parse(key), std::nullopt)->has_value();
  }
  void Read(const std::string& key) {
    ASSERT_TRUE(cache_->Get(*ObjectKey::Parse(key), std::nullopt)->has_value()) << key;
  }
  CacheStats Stats() { return *admin_->Stats(); }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<BlobStore> store_;
  std::unique_ptr<Engine> engine_;
  ObjectCache* cache_ = nullptr;
  Management* admin_ = nullptr;
};

}  // namespace quiver
