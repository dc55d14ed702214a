#include "exec/artifact_source.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

#include <arrow/filesystem/localfs.h>
#include <arrow/table.h>
#include <arrow/util/key_value_metadata.h>
#include <nlohmann/json.hpp>

#include "exec/artifact_file.h"

namespace quiver {

namespace {

using nlohmann::json;

constexpr const char* kProvenancePrefix = "quiver.artifact.";

// Streams a table fetched whole.
class TableStream final : public QueryStream {
 public:
  explicit TableStream(std::shared_ptr<arrow::Table> table)
      : table_(std::move(table)), reader_(*table_) {}
  std::shared_ptr<arrow::Schema> schema() const override { return table_->schema(); }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Next() override {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader_.ReadNext(&batch));
    return batch;
  }
  void Cancel() override {}  // nothing runs any more: the table is in memory

 private:
  std::shared_ptr<arrow::Table> table_;
  arrow::TableBatchReader reader_;
};

arrow::Status Named(const arrow::Status& st, const std::string& url) {
  if (st.ok()) return st;
  return arrow::Status(st.code(), "artifact '" + url + "': " + st.message(), st.detail());
}

std::string SchemeOf(const std::string& url) {
  const auto colon = url.find("://");
  return colon == std::string::npos ? "" : url.substr(0, colon);
}

// URL schemes are case-insensitive (RFC 3986): "FILE:///x" is "file:///x".
std::string LowerScheme(const std::string& url) {
  std::string out = url;
  const size_t n = SchemeOf(url).size();
  std::transform(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "/a/b/../c" -> "/a/c", symlinks resolved as far as the path exists.
std::string CanonicalLocal(const std::string& path) {
  std::error_code ec;
  auto canonical = std::filesystem::weakly_canonical(std::filesystem::path(path), ec);
  if (ec) canonical = std::filesystem::path(path).lexically_normal();
  std::string out = canonical.string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// Refuse empty, "." and ".." segments in the part after SCHEME://.
arrow::Status CheckSegments(const std::string& url, const std::string& rest) {
  size_t start = 0;
  while (start <= rest.size()) {
    auto end = rest.find('/', start);
    if (end == std::string::npos) end = rest.size();
    const std::string segment = rest.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return arrow::Status::Invalid("artifact URL '", url,
                                    "' has an empty, '.' or '..' path segment");
    }
    start = end + 1;
  }
  return arrow::Status::OK();
}

// A normalized URL: file:// + resolved path; others as given, segments checked.
arrow::Result<std::string> Normalize(const std::string& given) {
  const std::string url = LowerScheme(given);
  if (url.find_first_of("?#") != std::string::npos) {
    return arrow::Status::Invalid("artifact URL '", given,
                                  "' must not have a query string or fragment");
  }
  for (unsigned char c : url) {
    if (c < 0x20 || c == 0x7f) {
      return arrow::Status::Invalid("artifact URL has a control character: '", given, "'");
    }
  }
  const std::string scheme = SchemeOf(url);
  if (scheme.empty()) {
    return arrow::Status::Invalid("artifact '", given,
                                  "' is not a URL such as file:///abs/path.parquet or "
                                  "s3://bucket/key.parquet");
  }
  const std::string rest = url.substr(scheme.size() + 3);
  if (scheme == "file") {
    if (rest.empty() || rest.front() != '/') {
      return arrow::Status::Invalid("artifact URL '", given,
                                    "' must be file:///ABSOLUTE/PATH (no host)");
    }
    std::string path;
    auto fs = arrow::fs::FileSystemFromUri(url, &path);
    if (!fs.ok()) return Named(arrow::Status::Invalid(fs.status().message()), given);
    return "file://" + CanonicalLocal(path);
  }
  ARROW_RETURN_NOT_OK(CheckSegments(given, rest));
  return url;
}

// Prefixes are compared without their trailing '/', and match whole segments.
std::string NormalizePrefix(const std::string& given) {
  const std::string prefix = LowerScheme(given);
  std::string out = prefix;
  if (SchemeOf(prefix) == "file" && prefix.size() > 7) {
    out = "file://" + CanonicalLocal(prefix.substr(7));
  }
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace

// Shared with fetches, which may still run after their caller gave up (timeout).
struct ArtifactSource::Counters {
  std::atomic<int64_t> fetches{0}, failures{0};
};

struct ArtifactSource::Located {
  std::shared_ptr<arrow::fs::FileSystem> fs;
  std::string path;
};

ArtifactSource::ArtifactSource(ArtifactSourceOptions options) : options_(std::move(options)) {
  spec_.name = "artifact";
  spec_.driver = "arrow";
  spec_.ttl_s = options_.default_ttl_s;
  spec_.max_concurrent = options_.pool.max_workers;
  spec_.max_queue = options_.pool.max_queue;
  for (const auto& prefix : options_.allowed_prefixes) prefixes_.push_back(NormalizePrefix(prefix));
}

arrow::Result<std::shared_ptr<ArtifactSource>> ArtifactSource::Make(ArtifactSourceOptions options) {
  if (!(options.timeout_s > 0)) return arrow::Status::Invalid("artifacts.timeout_s must be > 0");
  if (!(options.default_ttl_s > 0)) {
    return arrow::Status::Invalid("artifacts.default_ttl_s must be > 0");
  }
  if (options.max_bytes < 1) return arrow::Status::Invalid("max_entry_bytes must be >= 1");
  options.pool.name = "artifacts";
  for (const auto& prefix : options.allowed_prefixes) {
    if (SchemeOf(prefix).empty()) {
      return arrow::Status::Invalid("artifacts.allowed_prefixes: '", prefix,
                                    "' is not a URL prefix such as file:///srv/data/");
    }
  }
  std::shared_ptr<ArtifactSource> source(new ArtifactSource(std::move(options)));
  ARROW_ASSIGN_OR_RAISE(source->pool_, WorkerPool::Make(source->options_.pool));
  source->counters_ = std::make_shared<Counters>();
  return source;
}

arrow::Result<ArtifactTarget> ArtifactSource::Check(const std::string& url,
                                                     const std::string& format) const {
  ArtifactTarget target;
  ARROW_ASSIGN_OR_RAISE(target.url, Normalize(url));
  bool allowed = false;
  for (const auto& prefix : prefixes_) {
    allowed = allowed || target.url == prefix || target.url.starts_with(prefix + "/");
  }
  if (!allowed) {
    // The prefixes are not listed: they would tell any client the server's paths. The
    // server logs them when it starts.
    return arrow::Status::Invalid("artifact '", url, "' is not allowed: it is not under ",
                                  prefixes_.empty()
                                      ? std::string("any of artifacts.allowed_prefixes (none "
                                                    "configured)")
                                      : std::string("an allowed prefix"));
  }
  if (format.empty()) {
    auto guessed = ArtifactFormatFromPath(target.url);
    if (!guessed.ok()) return Named(guessed.status(), url);
    target.format = *guessed;
  } else {
    ARROW_ASSIGN_OR_RAISE(target.format, ArtifactFormatFromName(format));
  }
  target.canonical =
      json{{"artifact", target.url}, {"format", ArtifactFormatName(target.format)}}.dump();
  return target;
}

arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> ArtifactSource::S3() const {
  std::lock_guard<std::mutex> lock(s3_mutex_);
  if (s3_) return s3_;
  if (!options_.s3) return nullptr;
  ARROW_ASSIGN_OR_RAISE(s3_, options_.s3());
  return s3_;
}

arrow::Result<ArtifactSource::Located> ArtifactSource::Locate(const std::string& url) const {
  Located located;
  const std::string scheme = SchemeOf(url);
  if (scheme == "file") {
    located.fs = std::make_shared<arrow::fs::LocalFileSystem>();
    located.path = url.substr(7);
    return located;
  }
  if (scheme == "s3") {
    ARROW_ASSIGN_OR_RAISE(located.fs, S3());
    if (located.fs) {
      located.path = url.substr(5);
      return located;
    }
  }
  auto fs = arrow::fs::FileSystemFromUri(url, &located.path);
  if (!fs.ok()) return Named(fs.status(), url);
  located.fs = std::move(*fs);
  return located;
}

arrow::Result<std::unique_ptr<QueryStream>> ArtifactSource::Execute(
    const std::string& sql, std::shared_ptr<arrow::RecordBatch> params) {
  if (params) return arrow::Status::Invalid("an artifact takes no parameters");
  json request = json::parse(sql, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.contains("artifact") || !request.contains("format")) {
    return arrow::Status::Invalid("not an artifact request: ", sql);
  }
  const std::string url = request["artifact"].get<std::string>();
  ARROW_ASSIGN_OR_RAISE(auto format, ArtifactFormatFromName(request["format"].get<std::string>()));
  auto located = Locate(url);
  if (!located.ok()) {
    ++counters_->failures;
    return located.status();
  }
  auto table = std::make_shared<std::shared_ptr<arrow::Table>>();
  const bool local = SchemeOf(url) == "file";
  auto task = [fs = located->fs, path = located->path, local, url, format, table,
               max_bytes = options_.max_bytes,
               counters = counters_](const arrow::StopToken& stop) -> arrow::Status {
    ++counters->fetches;
    // Local files are opened here, once, and checked again (exec/artifact_file.h): the path
    // was checked when the request was planned, and may name something else by now.
    ARROW_ASSIGN_OR_RAISE(auto opened,
                          local ? OpenLocalArtifact(path) : OpenArtifact(fs.get(), path));
    if (opened.size > max_bytes) {
      // Its data would not be smaller: refused before a byte of it is read.
      return ArtifactTooLarge("the file is " + std::to_string(opened.size) + " bytes", max_bytes);
    }
    ARROW_ASSIGN_OR_RAISE(auto read, ReadArtifact(opened.file, format, stop, max_bytes));
    ARROW_RETURN_NOT_OK(stop.Poll());
    auto metadata = read->schema()->metadata() ? read->schema()->metadata()->Copy()
                                               : std::make_shared<arrow::KeyValueMetadata>();
    // The provenance is the server's to say: a file's own quiver.artifact.* keys would be
    // found before ours.
    std::vector<int64_t> forged;
    for (int64_t i = 0; i < metadata->size(); ++i) {
      if (metadata->key(i).starts_with(kProvenancePrefix)) forged.push_back(i);
    }
    ARROW_RETURN_NOT_OK(metadata->DeleteMany(std::move(forged)));
    metadata->Append("quiver.artifact.url", url);
    metadata->Append("quiver.artifact.format", ArtifactFormatName(format));
    metadata->Append("quiver.artifact.size", std::to_string(opened.size));
    metadata->Append("quiver.artifact.mtime_ms", std::to_string(opened.mtime_ms));
    if (!opened.etag.empty()) metadata->Append("quiver.artifact.etag", opened.etag);
    *table = read->ReplaceSchemaMetadata(metadata);
    return arrow::Status::OK();
  };
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000));
  auto st = pool_->Run(std::move(task), timeout);
  if (!st.ok()) {
    ++counters_->failures;
    return Named(st, url);
  }
  return std::make_unique<TableStream>(*table);
}

ArtifactSourceStats ArtifactSource::stats() const {
  ArtifactSourceStats s;
  s.fetches = counters_->fetches;
  s.failures = counters_->failures;
  s.pool = pool_->stats();
  return s;
}

}  // namespace quiver
