#include "exec/adbc_source.h"

#include <dlfcn.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <adbc.h>
#include <arrow/c/bridge.h>
#include <arrow/record_batch.h>

#include "common/rejection.h"

namespace quiver {

namespace {

struct DriverLibrary {
  std::string path;
  void* handle = nullptr;
  AdbcDriver driver{};
  int version = 0;
};

arrow::Status AdbcStatus(AdbcStatusCode code, AdbcError* error, const std::string& what) {
  if (code == ADBC_STATUS_OK) return arrow::Status::OK();
  std::string message = error->message ? error->message : "(no message)";
  if (error->release) error->release(error);
  switch (code) {
    case ADBC_STATUS_INVALID_ARGUMENT:
    case ADBC_STATUS_INVALID_DATA:
    case ADBC_STATUS_NOT_FOUND:
      return arrow::Status::Invalid(what, ": ", message);
    case ADBC_STATUS_CANCELLED:
      return arrow::Status::Cancelled(what, ": ", message);
    case ADBC_STATUS_NOT_IMPLEMENTED:
      return arrow::Status::NotImplemented(what, ": ", message);
    default:
      return arrow::Status::IOError(what, ": ", message);
  }
}

// Driver libraries are loaded once per path and never unloaded.
arrow::Result<DriverLibrary*> LoadDriver(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<DriverLibrary>> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(path);
  if (it != loaded.end()) return it->second.get();

  auto lib = std::make_unique<DriverLibrary>();
  lib->path = path;
  lib->handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib->handle) {
    return arrow::Status::IOError("cannot load ADBC driver '", path, "': ", ::dlerror());
  }
  auto init = reinterpret_cast<AdbcDriverInitFunc>(::dlsym(lib->handle, "AdbcDriverInit"));
  if (!init) {
    return arrow::Status::IOError("ADBC driver '", path, "' has no AdbcDriverInit entrypoint");
  }
  for (int version : {ADBC_VERSION_1_1_0, ADBC_VERSION_1_0_0}) {
    std::memset(&lib->driver, 0, sizeof(lib->driver));
    AdbcError error{};
    auto code = init(version, &lib->driver, &error);
    if (code == ADBC_STATUS_OK) {
      lib->version = version;
      break;
    }
    if (code != ADBC_STATUS_NOT_IMPLEMENTED) {
      return AdbcStatus(code, &error, "initializing ADBC driver '" + path + "'");
    }
    if (error.release) error.release(&error);
  }
  if (lib->version == 0) {
    return arrow::Status::NotImplemented("ADBC driver '", path, "' supports neither ADBC 1.1 nor 1.0");
  }
  auto* raw = lib.get();
  loaded.emplace(path, std::move(lib));
  return raw;
}

class AdbcSourceImpl;

class AdbcQueryStream final : public QueryStream {
 public:
  AdbcQueryStream(std::shared_ptr<AdbcSourceImpl> source, std::unique_ptr<AdbcConnection> conn,
                  std::unique_ptr<AdbcStatement> stmt,
                  std::shared_ptr<arrow::RecordBatchReader> reader);
  ~AdbcQueryStream() override;

  std::shared_ptr<arrow::Schema> schema() const override { return reader_->schema(); }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Next() override;
  void Cancel() override;

 private:
  std::shared_ptr<AdbcSourceImpl> source_;
  std::unique_ptr<AdbcConnection> conn_;
  std::unique_ptr<AdbcStatement> stmt_;
  std::shared_ptr<arrow::RecordBatchReader> reader_;
};

class AdbcSourceImpl final : public Source, public std::enable_shared_from_this<AdbcSourceImpl> {
 public:
  AdbcSourceImpl(SourceSpec spec, DriverLibrary* lib, SqlDialect dialect)
      : spec_(std::move(spec)), lib_(lib), dialect_(dialect) {}

  ~AdbcSourceImpl() override {
    AdbcError error{};
    for (auto& conn : idle_) {
      lib_->driver.ConnectionRelease(conn.get(), &error);
      if (error.release) error.release(&error);
    }
    if (db_open_) lib_->driver.DatabaseRelease(&db_, &error);
    if (error.release) error.release(&error);
  }

  arrow::Status Open() {
    AdbcError error{};
    ARROW_RETURN_NOT_OK(Check(lib_->driver.DatabaseNew(&db_, &error), &error, "creating database"));
    db_open_ = true;
    // Drivers loaded without a driver manager need db_.private_driver set for 1.1 calls.
    db_.private_driver = &lib_->driver;
    ARROW_RETURN_NOT_OK(Check(lib_->driver.DatabaseSetOption(&db_, "uri", spec_.uri.c_str(), &error),
                              &error, "setting uri"));
    for (const auto& [k, v] : spec_.options) {
      ARROW_RETURN_NOT_OK(Check(lib_->driver.DatabaseSetOption(&db_, k.c_str(), v.c_str(), &error),
                                &error, "setting option '" + k + "'"));
    }
    ARROW_RETURN_NOT_OK(Check(lib_->driver.DatabaseInit(&db_, &error), &error, "connecting"));
    // Connect once now, so that a bad URI or an unreachable server fails at startup.
    ARROW_ASSIGN_OR_RAISE(auto conn, Connect());
    idle_.push_back(std::move(conn));
    return arrow::Status::OK();
  }

  const SourceSpec& spec() const override { return spec_; }
  SqlDialect dialect() const override { return dialect_; }
  const AdbcDriver& driver() const { return lib_->driver; }

  arrow::Status Check(AdbcStatusCode code, AdbcError* error, const std::string& what) const {
    return AdbcStatus(code, error, "source '" + spec_.name + "': " + what);
  }

  arrow::Result<std::unique_ptr<QueryStream>> Execute(
      const std::string& sql, std::shared_ptr<arrow::RecordBatch> params) override {
    ARROW_ASSIGN_OR_RAISE(auto conn, Acquire());
    auto stream = Run(conn, sql, params);
    if (!stream.ok()) Release(std::move(conn));
    return stream;
  }

  void Release(std::unique_ptr<AdbcConnection> conn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (conn) idle_.push_back(std::move(conn));
      --running_;
    }
    cv_.notify_one();
  }

 private:
  arrow::Result<std::unique_ptr<AdbcConnection>> Connect() {
    auto conn = std::make_unique<AdbcConnection>();
    std::memset(conn.get(), 0, sizeof(AdbcConnection));
    AdbcError error{};
    ARROW_RETURN_NOT_OK(
        Check(lib_->driver.ConnectionNew(conn.get(), &error), &error, "creating connection"));
    conn->private_driver = &lib_->driver;
    auto st = Check(lib_->driver.ConnectionInit(conn.get(), &db_, &error), &error, "connecting");
    if (!st.ok()) {
      AdbcError ignored{};
      lib_->driver.ConnectionRelease(conn.get(), &ignored);
      if (ignored.release) ignored.release(&ignored);
      return st;
    }
    return conn;
  }

  arrow::Result<std::unique_ptr<AdbcConnection>> Acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (running_ >= spec_.max_concurrent) {
      if (waiting_ >= spec_.max_queue) {
        return Reject(arrow::Status::CapacityError(
                          "resource exhausted: source '", spec_.name, "' is running ", running_,
                          " queries and ", waiting_, " more are queued (max_concurrent ",
                          spec_.max_concurrent, ", max_queue ", spec_.max_queue, ")"),
                      RejectionKind::kBusy, "max_queue", spec_.max_queue);
      }
      ++waiting_;
      cv_.wait(lock, [&] { return running_ < spec_.max_concurrent; });
      --waiting_;
    }
    ++running_;
    std::unique_ptr<AdbcConnection> conn;
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
    lock.unlock();
    if (conn) return conn;
    auto fresh = Connect();
    if (!fresh.ok()) Release(nullptr);
    return fresh;
  }

  arrow::Result<std::unique_ptr<QueryStream>> Run(std::unique_ptr<AdbcConnection>& conn,
                                                  const std::string& sql,
                                                  const std::shared_ptr<arrow::RecordBatch>& params) {
    AdbcError error{};
    auto stmt = std::make_unique<AdbcStatement>();
    std::memset(stmt.get(), 0, sizeof(AdbcStatement));
    ARROW_RETURN_NOT_OK(Check(lib_->driver.StatementNew(conn.get(), stmt.get(), &error), &error,
                              "creating statement"));
    stmt->private_driver = &lib_->driver;
    auto release_stmt = [&] {
      AdbcError ignored{};
      lib_->driver.StatementRelease(stmt.get(), &ignored);
      if (ignored.release) ignored.release(&ignored);
    };
    auto st = Check(lib_->driver.StatementSetSqlQuery(stmt.get(), sql.c_str(), &error), &error,
                    "setting query");
    if (st.ok() && dialect_ == SqlDialect::kSqlite) {
      // The SQLite driver's default of 1024 rows per batch makes many tiny messages.
      AdbcError ignored{};
      lib_->driver.StatementSetOption(stmt.get(), "adbc.sqlite.query.batch_rows", "65536",
                                      &ignored);
      if (ignored.release) ignored.release(&ignored);
    }
    for (const auto& [k, v] : spec_.statement_options) {
      if (!st.ok()) break;
      st = Check(lib_->driver.StatementSetOption(stmt.get(), k.c_str(), v.c_str(), &error),
                 &error, "setting statement option '" + k + "'");
    }
    if (st.ok() && params && params->num_columns() > 0) {
      ArrowArray c_array{};
      ArrowSchema c_schema{};
      st = arrow::ExportRecordBatch(*params, &c_array, &c_schema);
      if (st.ok()) {
        st = Check(lib_->driver.StatementBind(stmt.get(), &c_array, &c_schema, &error), &error,
                   "binding parameters");
      }
      // The driver takes what it accepted; release what it left.
      if (c_array.release) c_array.release(&c_array);
      if (c_schema.release) c_schema.release(&c_schema);
    }
    ArrowArrayStream c_stream{};
    if (st.ok()) {
      int64_t rows_affected = -1;
      st = Check(lib_->driver.StatementExecuteQuery(stmt.get(), &c_stream, &rows_affected, &error),
                 &error, "executing query");
    }
    if (!st.ok()) {
      // A driver may fail with the stream already set (SQLite's does when stepping the
      // first rows fails): released here, or it leaks (found by the ASan run).
      if (c_stream.release) c_stream.release(&c_stream);
      release_stmt();
      return st;
    }
    auto reader = arrow::ImportRecordBatchReader(&c_stream);
    if (!reader.ok()) {
      if (c_stream.release) c_stream.release(&c_stream);
      release_stmt();
      return reader.status();
    }
    return std::make_unique<AdbcQueryStream>(shared_from_this(), std::move(conn), std::move(stmt),
                                             std::move(*reader));
  }

  SourceSpec spec_;
  DriverLibrary* lib_;
  SqlDialect dialect_;
  AdbcDatabase db_{};
  bool db_open_ = false;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<AdbcConnection>> idle_;
  int64_t running_ = 0;
  int64_t waiting_ = 0;
};

AdbcQueryStream::AdbcQueryStream(std::shared_ptr<AdbcSourceImpl> source,
                                 std::unique_ptr<AdbcConnection> conn,
                                 std::unique_ptr<AdbcStatement> stmt,
                                 std::shared_ptr<arrow::RecordBatchReader> reader)
    : source_(std::move(source)),
      conn_(std::move(conn)),
      stmt_(std::move(stmt)),
      reader_(std::move(reader)) {}

AdbcQueryStream::~AdbcQueryStream() {
  // The result stream goes before its statement, the statement before its connection.
  if (reader_) (void)reader_->Close();
  reader_.reset();
  AdbcError error{};
  source_->driver().StatementRelease(stmt_.get(), &error);
  if (error.release) error.release(&error);
  source_->Release(std::move(conn_));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> AdbcQueryStream::Next() {
  std::shared_ptr<arrow::RecordBatch> batch;
  auto st = reader_->ReadNext(&batch);
  if (!st.ok()) {
    return arrow::Status(st.code(), "source '" + source_->spec().name + "': " + st.message());
  }
  return batch;
}

void AdbcQueryStream::Cancel() {
  const auto& driver = source_->driver();
  if (driver.StatementCancel) {
    AdbcError error{};
    driver.StatementCancel(stmt_.get(), &error);
    if (error.release) error.release(&error);
  }
}

}  // namespace

arrow::Result<std::string> ResolveAdbcDriver(const std::string& driver) {
  if (driver.find('/') != std::string::npos) return driver;
  if (driver != "sqlite" && driver != "postgresql") {
    return arrow::Status::Invalid("unknown ADBC driver '", driver,
                                  "': use sqlite, postgresql, or a path to a driver library");
  }
  if (const char* dir = std::getenv("QUIVER_ADBC_DRIVER_DIR")) {
    return std::string(dir) + "/libadbc_driver_" + driver + ".so";
  }
#if defined(QUIVER_ADBC_SQLITE_DRIVER) && defined(QUIVER_ADBC_POSTGRESQL_DRIVER)
  return std::string(driver == "sqlite" ? QUIVER_ADBC_SQLITE_DRIVER
                                        : QUIVER_ADBC_POSTGRESQL_DRIVER);
#else
  return "libadbc_driver_" + driver + ".so";
#endif
}

arrow::Result<std::shared_ptr<Source>> OpenAdbcSource(const SourceSpec& spec) {
  if (spec.max_concurrent < 1) {
    return arrow::Status::Invalid("source '", spec.name, "': max_concurrent must be >= 1");
  }
  if (spec.max_queue < 0) {
    return arrow::Status::Invalid("source '", spec.name, "': max_queue must be >= 0");
  }
  ARROW_ASSIGN_OR_RAISE(auto path, ResolveAdbcDriver(spec.driver));
  ARROW_ASSIGN_OR_RAISE(auto* lib, LoadDriver(path));
  SqlDialect dialect = SqlDialect::kGeneric;
  if (spec.driver == "sqlite" || path.find("sqlite") != std::string::npos) {
    dialect = SqlDialect::kSqlite;
  } else if (spec.driver == "postgresql" || path.find("postgresql") != std::string::npos) {
    dialect = SqlDialect::kPostgresql;
  }
  auto source = std::make_shared<AdbcSourceImpl>(spec, lib, dialect);
  ARROW_RETURN_NOT_OK(source->Open());
  return source;
}

arrow::Result<SourceSpec> ParseSourceFlag(const std::string& flag) {
  auto eq = flag.find('=');
  if (eq == std::string::npos || eq == 0) {
    return arrow::Status::Invalid("--source '", flag, "': expected NAME=URI");
  }
  SourceSpec spec;
  spec.name = flag.substr(0, eq);
  for (char c : spec.name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return arrow::Status::Invalid("--source '", flag, "': source name '", spec.name,
                                    "' may only hold [A-Za-z0-9._-]");
    }
  }
  std::string uri = flag.substr(eq + 1);
  if (uri.rfind("sqlite://", 0) == 0) {
    spec.driver = "sqlite";
    spec.uri = uri.substr(9);  // sqlite:///abs/path -> /abs/path
  } else if (uri.rfind("sqlite:", 0) == 0) {
    spec.driver = "sqlite";
    spec.uri = uri.substr(7);
  } else if (uri.rfind("postgresql://", 0) == 0 || uri.rfind("postgres://", 0) == 0) {
    spec.driver = "postgresql";
    spec.uri = uri;
  } else {
    return arrow::Status::Invalid("--source '", flag, "': unsupported URI scheme; use ",
                                  "sqlite:///path/to.db or postgresql://user@host:port/db");
  }
  if (spec.uri.empty()) return arrow::Status::Invalid("--source '", flag, "': empty URI");
  return spec;
}

}  // namespace quiver
