#include "cli/data_commands.h"

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/atomic_file.h"
#include "cli/data_output.h"
#include "cli/exit_codes.h"
#include "cli/file_formats.h"
#include "cli/preview.h"
#include "cli/progress.h"
#include "cli/server_option.h"
#include "client/quiver_client.h"
#include "common/config.h"
#include "common/key.h"

namespace quiver {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// The flags every data command takes.
struct DataFlags {
  std::string server;
  Credentials credentials;
  double timeout_s = 0;
  bool as_json = false;
  bool no_progress = false;
};

void AddDataFlags(CLI::App* cmd, DataFlags* flags) {
  cmd->add_option("--server", flags->server, kServerOptionHelp);
  AddCredentialOptions(cmd, &flags->credentials);
  cmd->add_option("--timeout", flags->timeout_s,
                  "Give up after SECONDS, the whole transfer included [default: no limit]")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", flags->as_json,
                "Print the result as one JSON object for scripts (ref, rows, bytes, cache "
                "status, elapsed_ms)");
  cmd->add_flag("--no-progress", flags->no_progress,
                "Never draw the progress bar (it is drawn on stderr when stderr is a "
                "terminal and the transfer passes 4 MiB)");
}

void AddOutputFlags(CLI::App* cmd, OutputFlags* out) {
  cmd->add_option("-o,--output", out->path,
                  "Write the result to FILE (atomically: all of it or nothing) instead of "
                  "printing a preview of its first rows");
  cmd->add_option("--format", out->format_name,
                  "Format of FILE: parquet, arrow (= feather, ipc: Arrow IPC file), arrows "
                  "(Arrow IPC stream) or csv [default: by FILE's extension]");
}

// Repeatable options take one value per occurrence, so they never swallow positionals.
CLI::Option* Repeatable(CLI::Option* option) {
  return option->expected(1)->allow_extra_args(false)->multi_option_policy(
      CLI::MultiOptionPolicy::TakeAll);
}

int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

std::string Duration(int64_t ms) {
  if (ms < 1000) return fmt::format("{} ms", ms);
  int64_t s = ms / 1000;
  if (s < 60) return fmt::format("{:.1f} s", ms / 1000.0);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void CheckKey(const std::string& command, const std::string& key) {
  auto parsed = ObjectKey::Parse(key);
  if (!parsed.ok()) {
    Fail(command, kExitUsage, "bad key '" + key + "': " + parsed.status().message());
  }
}

std::unique_ptr<QuiverClient> Connect(const std::string& command, const DataFlags& flags) {
  ClientOptions options;
  options.timeout_s = flags.timeout_s;
  auto client = QuiverClient::Connect(ServerLocation(flags.server),
                                      WithCredentials(flags.credentials, options));
  if (!client.ok()) Fail(command, kExitUsage, client.status().message());
  return std::move(*client);
}

std::optional<FileFormat> OutputFormatOrFail(const std::string& command,
                                             const OutputFlags& out) {
  auto format = ResolveOutputFormat(out);
  if (!format.ok()) Fail(command, kExitUsage, format.status().message());
  if (!out.path.empty()) {
    auto st = AtomicFile::CheckTarget(out.path);
    if (!st.ok()) Fail(command, kExitUsage, st.message());
  }
  return *format;
}

// Sends the stream to its output; a server error ends the command with its exit code.
std::shared_ptr<arrow::Table> DeliverOrFail(const std::string& command,
                                            const DataFlags& flags, DataStream* stream,
                                            const OutputFlags& out,
                                            std::optional<FileFormat> format,
                                            Progress* progress) {
  arrow::Status read_error;
  auto head = Deliver(stream, out, format, &read_error);
  progress->Finish();
  if (!head.ok()) {
    if (!read_error.ok()) FailCall(command, ServerLocation(flags.server), read_error);
    Fail(command, kExitError, head.status().message());
  }
  return *head;
}

// -- put -------------------------------------------------------------------------------------

struct PutArgs {
  DataFlags flags;
  std::string key, file, format_name;
  std::optional<uint64_t> if_version;
  std::vector<std::string> depends_on, tags;
};

void RunPut(const PutArgs& a) {
  const std::string command = "put";
  CheckKey(command, a.key);
  std::optional<FileFormat> format;
  if (!a.format_name.empty()) {
    auto parsed = ParseFormatName(a.format_name);
    if (!parsed.ok()) Fail(command, kExitUsage, parsed.status().message());
    format = *parsed;
  }
  auto input = OpenInputFile(a.file, format);
  if (!input.ok()) Fail(command, kExitUsage, input.status().message());
  auto client = Connect(command, a.flags);

  PutOptions options{a.if_version, a.depends_on, a.tags};
  Progress progress("put " + a.key, !a.flags.no_progress && Progress::StderrIsTerminal(),
                    input->total_rows);
  int64_t rows = 0, bytes = 0;
  bool input_failed = false;
  const auto start = Clock::now();
  auto ref = client->Put(
      a.key, input->reader.get(), options,
      [&](int64_t r, int64_t b) {
        rows = r;
        bytes = b;
        progress.Update(r, b);
      },
      &input_failed);
  progress.Finish();
  if (!ref.ok()) {
    if (input_failed) {
      Fail(command, kExitUsage,
           fmt::format("cannot read '{}' as {}: {}; nothing was stored", a.file,
                       FormatName(input->format), ref.status().message()));
    }
    FailCall(command, ServerLocation(a.flags.server), ref.status());
  }
  const int64_t elapsed = MillisSince(start);
  if (a.flags.as_json) {
    json out = {{"ref",
                 {{"endpoint", ref->endpoint}, {"key", ref->key}, {"version", ref->version}}},
                {"rows", rows},
                {"bytes", bytes},
                {"elapsed_ms", elapsed},
                {"input", a.file},
                {"format", FormatName(input->format)}};
    std::cout << out.dump() << std::endl;
    return;
  }
  std::cout << fmt::format("stored {} version {} ({} rows, {} from {} in {})\n", ref->key,
                           ref->version, rows, FormatByteSize(bytes), a.file, Duration(elapsed));
}

void AddPut(CLI::App& app) {
  auto a = std::make_shared<PutArgs>();
  auto* cmd = app.add_subcommand(
      "put", "Store a Parquet, Arrow IPC (Feather) or CSV file as the next version of KEY");
  cmd->add_option("KEY", a->key, "Object key: session/object or namespace/session/object")
      ->required();
  cmd->add_option("FILE", a->file, "Input file (.parquet .pq .arrow .feather .ipc .arrows "
                                   ".csv)")
      ->required();
  cmd->add_option("--format", a->format_name,
                  "Input format: parquet, arrow (= feather, ipc; an IPC file or stream), "
                  "arrows or csv [default: by the file's extension]");
  cmd->add_option("--if-version", a->if_version,
                  "Compare-and-set: store only if KEY's latest version is still N (0: only "
                  "if KEY does not exist)");
  Repeatable(cmd->add_option("--depends-on", a->depends_on,
                             "A key this object is derived from (repeatable); invalidating "
                             "it removes this object"));
  Repeatable(cmd->add_option("--tag", a->tags, "A tag for `quiver invalidate --tag` "
                                                "(repeatable)"));
  AddDataFlags(cmd, &a->flags);
  cmd->callback([a] { RunPut(*a); });
}

// -- get -------------------------------------------------------------------------------------

struct GetArgs {
  DataFlags flags;
  OutputFlags out;
  std::string key;
  std::optional<uint64_t> version;
};

void RunGet(const GetArgs& a) {
  const std::string command = "get";
  CheckKey(command, a.key);
  const auto format = OutputFormatOrFail(command, a.out);
  auto client = Connect(command, a.flags);
  Progress progress("get " + a.key, !a.flags.no_progress && Progress::StderrIsTerminal());
  const auto start = Clock::now();
  auto stream = client->Get(a.key, a.version,
                            [&](int64_t rows, int64_t bytes) { progress.Update(rows, bytes); });
  if (!stream.ok()) FailCall(command, ServerLocation(a.flags.server), stream.status());
  auto head = DeliverOrFail(command, a.flags, stream->get(), a.out, format, &progress);
  const int64_t elapsed = MillisSince(start);
  const auto& meta = (*stream)->metadata();
  // A stored stream without batches has no metadata to carry the version.
  const json version = meta.contains("version") ? meta["version"]
                       : a.version               ? json(*a.version)
                                                 : json(nullptr);
  const int64_t rows = (*stream)->rows(), bytes = (*stream)->bytes();
  if (a.flags.as_json) {
    json out = {{"ref", {{"endpoint", meta.value("endpoint", ServerLocation(a.flags.server))},
                         {"key", a.key},
                         {"version", version}}},
                {"rows", rows},
                {"bytes", bytes},
                {"elapsed_ms", elapsed},
                {"schema", SchemaJson(*(*stream)->schema())},
                {"output", a.out.path.empty() ? json(nullptr) : json(a.out.path)},
                {"format", format ? json(FormatName(*format)) : json(nullptr)}};
    std::cout << out.dump() << std::endl;
    return;
  }
  const std::string what = fmt::format("{} version {} ({} rows, {} in {})", a.key,
                                       version.is_null() ? "?" : version.dump(), rows,
                                       FormatByteSize(bytes), Duration(elapsed));
  if (!a.out.path.empty()) {
    std::cout << fmt::format("wrote {} ({}): {}\n", a.out.path, FormatName(*format), what);
    return;
  }
  std::cout << what << "\n\n";
  PrintPreview(*head, rows, std::cout);
}

void AddGet(CLI::App& app) {
  auto a = std::make_shared<GetArgs>();
  auto* cmd = app.add_subcommand(
      "get", "Read KEY: print a preview of its first rows, or write it to a file (-o)");
  cmd->add_option("KEY", a->key, "Object key: session/object or namespace/session/object")
      ->required();
  cmd->add_option("--version", a->version, "Read version N instead of the latest");
  AddOutputFlags(cmd, &a->out);
  AddDataFlags(cmd, &a->flags);
  cmd->callback([a] { RunGet(*a); });
}

// -- query -----------------------------------------------------------------------------------

struct QueryArgs {
  DataFlags flags;
  OutputFlags out;
  std::string source, sql;
  std::vector<std::string> params;
  std::optional<double> ttl_s;
};

// A parameter is a JSON scalar when it parses as one (10, 2.5, true, null, "10"), else the
// string itself (view, 2024-01-01).
json ParamValue(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded() && (j.is_primitive())) return j;
  return text;
}

std::string QuerySummary(const json& meta) {
  const std::string cache = meta.value("cache", "?");
  if (cache == "hit") {
    std::string text = "hit";
    if (meta.contains("created_ms") && meta["created_ms"].is_number()) {
      text += ", computed " + Duration(NowUnixMs() - meta["created_ms"].get<int64_t>()) + " ago";
    }
    if (meta.contains("exec_ms") && meta["exec_ms"].is_number()) {
      text += " in " + Duration(meta["exec_ms"].get<int64_t>());
    }
    if (meta.contains("expires_ms") && meta["expires_ms"].is_number()) {
      text += ", expires in " + Duration(meta["expires_ms"].get<int64_t>() - NowUnixMs());
    }
    return text;
  }
  if (cache == "miss") {
    return meta.value("joined", false) ? "miss, joined a running execution"
                                       : "miss, executed now";
  }
  return cache + (meta.contains("reason") && meta["reason"].is_string()
                      ? " (" + meta["reason"].get<std::string>() + ")"
                      : "");
}

void RunQuery(const QueryArgs& a) {
  const std::string command = "query";
  if (a.source.empty()) Fail(command, kExitUsage, "--source is empty");
  const auto format = OutputFormatOrFail(command, a.out);
  QueryRequest request{a.source, a.sql, json::array(), a.ttl_s};
  for (const auto& p : a.params) request.params.push_back(ParamValue(p));
  auto client = Connect(command, a.flags);
  Progress progress("query " + a.source, !a.flags.no_progress && Progress::StderrIsTerminal());
  const auto start = Clock::now();
  auto stream = client->Query(request,
                              [&](int64_t rows, int64_t bytes) { progress.Update(rows, bytes); });
  if (!stream.ok()) FailCall(command, ServerLocation(a.flags.server), stream.status());
  const int64_t first_ms = MillisSince(start);
  auto head = DeliverOrFail(command, a.flags, stream->get(), a.out, format, &progress);
  const int64_t elapsed = MillisSince(start);
  const auto& meta = (*stream)->metadata();
  const int64_t rows = (*stream)->rows(), bytes = (*stream)->bytes();
  if (a.flags.as_json) {
    json out = {{"cache", meta.value("cache", "")},
                {"key", meta.value("key", "")},
                {"rows", rows},
                {"bytes", bytes},
                {"elapsed_ms", elapsed},
                {"first_batch_ms", first_ms},
                {"metadata", meta},
                {"schema", SchemaJson(*(*stream)->schema())},
                {"output", a.out.path.empty() ? json(nullptr) : json(a.out.path)},
                {"format", format ? json(FormatName(*format)) : json(nullptr)}};
    std::cout << out.dump() << std::endl;
    return;
  }
  const std::string what = fmt::format("{}: {} rows, {} in {} (first batch after {})",
                                       QuerySummary(meta), rows, FormatByteSize(bytes),
                                       Duration(elapsed), Duration(first_ms));
  if (!a.out.path.empty()) {
    std::cout << fmt::format("wrote {} ({}): {}\n", a.out.path, FormatName(*format), what);
    return;
  }
  std::cout << what << "\n\n";
  PrintPreview(*head, rows, std::cout);
}

void AddQuery(CLI::App& app) {
  auto a = std::make_shared<QueryArgs>();
  auto* cmd = app.add_subcommand(
      "query", "Run SQL on a source through the cache: a hit is served from the store, a "
               "miss runs once and is stored");
  cmd->add_option("--source", a->source, "The source's name (as configured on the server)")
      ->required();
  cmd->add_option("SQL", a->sql, "The query, in the source's dialect")->required();
  Repeatable(cmd->add_option(
      "--param", a->params,
      "A parameter, bound in order to ? ($1 in PostgreSQL); JSON scalars keep their type "
      "(10, 2.5, true, null, '\"10\"'), anything else is a string (repeatable; a negative "
      "number: --param=-5)"));
  cmd->add_option("--ttl", a->ttl_s, "Keep the result fresh for SECONDS [default: the "
                                     "source's ttl_s]")
      ->check(CLI::PositiveNumber);
  AddOutputFlags(cmd, &a->out);
  AddDataFlags(cmd, &a->flags);
  cmd->callback([a] { RunQuery(*a); });
}

}  // namespace

void AddDataCommands(CLI::App& app) {
  AddPut(app);
  AddGet(app);
  AddQuery(app);
}

}  // namespace quiver
