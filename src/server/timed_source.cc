#include "server/timed_source.h"

#include <chrono>
#include <string>
#include <utility>

namespace quiver {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Reports once: when the stream ends, fails, or is dropped before its end.
class TimedStream final : public QueryStream {
 public:
  TimedStream(std::unique_ptr<QueryStream> inner, Metrics* metrics, std::string source,
              SteadyClock::time_point start)
      : inner_(std::move(inner)), metrics_(metrics), source_(std::move(source)), start_(start) {}
  ~TimedStream() override {
    inner_.reset();  // the database's resources go first: they are part of the execution
    End("cancelled");
  }

  std::shared_ptr<arrow::Schema> schema() const override { return inner_->schema(); }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Next() override {
    auto batch = inner_->Next();
    if (!batch.ok()) {
      End("error");
    } else if (*batch == nullptr) {
      End("ok");
    }
    return batch;
  }
  void Cancel() override { inner_->Cancel(); }

 private:
  void End(const char* outcome) {
    if (ended_) return;
    ended_ = true;
    metrics_->ExecutionEnded(
        source_, outcome, std::chrono::duration<double>(SteadyClock::now() - start_).count());
  }

  std::unique_ptr<QueryStream> inner_;
  Metrics* metrics_;
  const std::string source_;
  const SteadyClock::time_point start_;
  bool ended_ = false;
};

class TimedSource final : public Source {
 public:
  TimedSource(std::shared_ptr<Source> inner, Metrics* metrics)
      : inner_(std::move(inner)), metrics_(metrics) {}

  const SourceSpec& spec() const override { return inner_->spec(); }
  SqlDialect dialect() const override { return inner_->dialect(); }
  arrow::Result<std::unique_ptr<QueryStream>> Execute(
      const std::string& sql, std::shared_ptr<arrow::RecordBatch> params) override {
    const auto start = SteadyClock::now();
    const std::string& name = inner_->spec().name;
    metrics_->ExecutionStarted(name);
    auto stream = inner_->Execute(sql, std::move(params));
    if (!stream.ok()) {
      metrics_->ExecutionEnded(name, "error",
                               std::chrono::duration<double>(SteadyClock::now() - start).count());
      return stream.status();
    }
    return std::make_unique<TimedStream>(std::move(*stream), metrics_, name, start);
  }

 private:
  std::shared_ptr<Source> inner_;
  Metrics* metrics_;
};

}  // namespace

std::shared_ptr<Source> WithExecutionMetrics(std::shared_ptr<Source> source, Metrics* metrics) {
  return std::make_shared<TimedSource>(std::move(source), metrics);
}

}  // namespace quiver
