// quiver_flight_load: a Flight load client in C++, so that a server's throughput can be
// measured without the cost of the Python client (bench/README.md, bench/load_bench.py).
//
//   get: N parallel streams, each a DoGet of the same ticket on its own connection, R
//        repetitions; every batch is counted (rows, bytes) and dropped, nothing is
//        concatenated.
//   put: N parallel DoPuts of a generated table (size, batch size) under KEY-0 .. KEY-(N-1)
//        (KEY when N is 1), each on its own connection, timed until the server's PutResult.
//
// A ticket is sent as given: Quiver reads "s/o", "s/o@3" or a JSON ticket (docs/api.md), the
// baseline server (bench/baseline_server.py) reads a key. A put's descriptor is the key's
// '/'-separated segments as a PATH, which both servers accept.
//
// Output: one JSON object per timed repetition on stdout (one line each); one human line per
// repetition on stderr. Exit code 0 if every repetition succeeded, 1 on a Flight error, 2 on
// bad arguments.
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <barrier>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <arrow/array/builder_binary.h>
#include <arrow/array/builder_primitive.h>
#include <arrow/buffer.h>
#include <arrow/flight/client.h>
#include <arrow/record_batch.h>
#include <arrow/util/byte_size.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace {

namespace flight = arrow::flight;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Arguments

// "64MiB", "1GiB", "1.5GB", "4096": bytes. Binary units (KiB, MiB, GiB) are powers of 1024,
// decimal ones (KB, MB, GB) of 1000, as in bench_env.parse_size.
arrow::Result<int64_t> ParseSize(const std::string& text) {
  double number = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [unit, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || number < 0 || !std::isfinite(number)) {
    return arrow::Status::Invalid("'", text, "' is not a size (e.g. 64MiB, 1GiB, 4096)");
  }
  std::string suffix(unit, end);
  std::transform(suffix.begin(), suffix.end(), suffix.begin(), ::tolower);
  if (!suffix.empty() && suffix.back() == 'b') suffix.pop_back();
  const std::vector<std::pair<std::string, double>> scales = {
      {"", 1},           {"k", 1e3},          {"ki", 1024.0},     {"m", 1e6},
      {"mi", 1048576.0}, {"g", 1e9},          {"gi", 1073741824.0}};
  for (const auto& [name, scale] : scales) {
    if (suffix == name) return static_cast<int64_t>(std::llround(number * scale));
  }
  return arrow::Status::Invalid("'", text, "' has an unknown unit (B, KiB, MiB, GiB, KB, MB, GB)");
}

struct Options {
  std::string mode;
  std::string endpoint;
  int streams = 1;
  int reps = 3;
  int warmup = -1;  // -1: 1 for get, 0 for put
  // get
  std::string ticket;
  int64_t expect_rows = -1;
  // put
  std::string key;
  std::string size_text = "1GiB";
  std::string batch_text = "64MiB";
  int64_t size = 0;
  int64_t batch = 0;
  uint64_t seed = 20251121;
  std::string label;
  bool return_memory = false;  // acted on before parsing, see main()
};

// ---------------------------------------------------------------------------------------
// Memory

// A received batch lands in buffers allocated for it: gRPC's slices, then the contiguous
// Arrow buffer its body is copied into. Allocators return large blocks to the kernel when
// they are freed, so every batch of a large get writes into fresh pages and takes a page
// fault per 4 KiB (measured: about 1.7 faults per page received, half the client's CPU).
// Keeping freed memory in the process for the next batch takes that cost out of the client,
// which is what the figures are about. Must run before any other thread or allocation.
void KeepFreedMemory() {
  ::setenv("ARROW_DEFAULT_MEMORY_POOL", "system", /*overwrite=*/0);  // Arrow's, on malloc
  ::mallopt(M_ARENA_MAX, 1);           // one heap for all threads...
  ::mallopt(M_MMAP_MAX, 0);            // ...that large blocks come from too, and
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);  // which keeps up to 1 GiB of free memory.
  ::mallopt(M_TOP_PAD, 64 << 20);
}

// ---------------------------------------------------------------------------------------
// Connections

arrow::Result<std::vector<std::unique_ptr<flight::FlightClient>>> ConnectAll(
    const std::string& endpoint, int count) {
  auto location = flight::Location::Parse(endpoint);
  if (!location.ok()) {
    return arrow::Status::Invalid("bad --endpoint '", endpoint,
                                  "' (expected grpc://HOST:PORT): ", location.status().message());
  }
  auto options = flight::FlightClientOptions::Defaults();
  // gRPC shares one TCP connection among channels to the same address unless each channel
  // has its own subchannel pool; N streams must be N connections, as N clients would be.
  options.generic_options.emplace_back("grpc.use_local_subchannel_pool", 1);
  std::vector<std::unique_ptr<flight::FlightClient>> clients;
  for (int i = 0; i < count; ++i) {
    auto client = flight::FlightClient::Connect(*location, options);
    if (!client.ok()) {
      return arrow::Status::IOError("connect to ", endpoint, ": ", client.status().message());
    }
    clients.push_back(std::move(*client));
  }
  return clients;
}

flight::FlightCallOptions CallOptions() {
  flight::FlightCallOptions call;
  call.timeout = flight::TimeoutDuration{600.0};
  return call;
}

double CpuSeconds() {
  struct rusage usage;
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// What one stream moved in one repetition.
struct StreamResult {
  arrow::Status status;
  int64_t rows = 0;
  int64_t bytes = 0;  // Arrow buffer bytes of the batches (pyarrow's nbytes)
  int64_t batches = 0;
  double seconds = 0;
  nlohmann::json extra;  // put: the server's PutResult metadata
};

// ---------------------------------------------------------------------------------------
// get

arrow::Status ReadStream(flight::FlightClient* client, const std::string& ticket,
                         StreamResult* out) {
  ARROW_ASSIGN_OR_RAISE(auto reader, client->DoGet(CallOptions(), flight::Ticket{ticket}));
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto chunk, reader->Next());
    if (!chunk.data) break;
    out->rows += chunk.data->num_rows();
    ARROW_ASSIGN_OR_RAISE(int64_t bytes, arrow::util::ReferencedBufferSize(*chunk.data));
    out->bytes += bytes;
    ++out->batches;
  }
  return arrow::Status::OK();
}

// ---------------------------------------------------------------------------------------
// put: a generated batch like bench_data.make_table's (id, key int64; x, y float64; s a
// string of 4-28 lowercase letters), about 52 bytes a row. The same batch is sent again and
// again, so that generating the data costs neither time nor memory per repetition.

constexpr int64_t kRowBytes = 4 * 8 + 4 + 16;

arrow::Result<std::shared_ptr<arrow::RecordBatch>> MakeBatch(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  arrow::Int64Builder id, key;
  arrow::DoubleBuilder x, y;
  arrow::StringBuilder s;
  ARROW_RETURN_NOT_OK(id.Reserve(rows));
  ARROW_RETURN_NOT_OK(key.Reserve(rows));
  ARROW_RETURN_NOT_OK(x.Reserve(rows));
  ARROW_RETURN_NOT_OK(y.Reserve(rows));
  ARROW_RETURN_NOT_OK(s.Reserve(rows));
  ARROW_RETURN_NOT_OK(s.ReserveData(rows * 16));
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  char text[32];
  for (int64_t i = 0; i < rows; ++i) {
    id.UnsafeAppend(i);
    key.UnsafeAppend(static_cast<int64_t>(rng() >> 24));
    x.UnsafeAppend(normal(rng));
    y.UnsafeAppend(uniform(rng));
    uint64_t bits = rng();
    int len = 4 + static_cast<int>(bits % 25);
    for (int c = 0; c < len; ++c) text[c] = static_cast<char>('a' + (rng() % 26));
    ARROW_RETURN_NOT_OK(s.Append(text, len));
  }
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("key", arrow::int64()),
                               arrow::field("x", arrow::float64()),
                               arrow::field("y", arrow::float64()),
                               arrow::field("s", arrow::utf8())});
  std::vector<std::shared_ptr<arrow::Array>> columns(5);
  ARROW_RETURN_NOT_OK(id.Finish(&columns[0]));
  ARROW_RETURN_NOT_OK(key.Finish(&columns[1]));
  ARROW_RETURN_NOT_OK(x.Finish(&columns[2]));
  ARROW_RETURN_NOT_OK(y.Finish(&columns[3]));
  ARROW_RETURN_NOT_OK(s.Finish(&columns[4]));
  return arrow::RecordBatch::Make(schema, rows, std::move(columns));
}

// The batches of one put: the full batch repeated, then a slice of it for the remainder.
struct PutPlan {
  std::shared_ptr<arrow::RecordBatch> full;
  int64_t full_count = 0;
  std::shared_ptr<arrow::RecordBatch> rest;  // null: none
};

arrow::Result<PutPlan> MakePlan(const Options& opt) {
  const int64_t total_rows = std::max<int64_t>(1, opt.size / kRowBytes);
  const int64_t batch_rows = std::min(total_rows, std::max<int64_t>(1, opt.batch / kRowBytes));
  PutPlan plan;
  ARROW_ASSIGN_OR_RAISE(plan.full, MakeBatch(batch_rows, opt.seed));
  plan.full_count = total_rows / batch_rows;
  if (int64_t rest = total_rows % batch_rows) plan.rest = plan.full->Slice(0, rest);
  return plan;
}

std::vector<std::string> PathOf(const std::string& key) {
  std::vector<std::string> path;
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    path.push_back(key.substr(start, slash - start));
    if (slash == std::string::npos) return path;
    start = slash + 1;
  }
}

arrow::Status WriteStream(flight::FlightClient* client, const std::string& key,
                          const PutPlan& plan, StreamResult* out) {
  auto descriptor = flight::FlightDescriptor::Path(PathOf(key));
  ARROW_ASSIGN_OR_RAISE(auto put,
                        client->DoPut(CallOptions(), descriptor, plan.full->schema()));
  auto send = [&](const arrow::RecordBatch& batch) -> arrow::Status {
    ARROW_RETURN_NOT_OK(put.writer->WriteRecordBatch(batch));
    out->rows += batch.num_rows();
    ARROW_ASSIGN_OR_RAISE(int64_t bytes, arrow::util::ReferencedBufferSize(batch));
    out->bytes += bytes;
    ++out->batches;
    return arrow::Status::OK();
  };
  for (int64_t i = 0; i < plan.full_count; ++i) ARROW_RETURN_NOT_OK(send(*plan.full));
  if (plan.rest) ARROW_RETURN_NOT_OK(send(*plan.rest));
  ARROW_RETURN_NOT_OK(put.writer->DoneWriting());
  std::shared_ptr<arrow::Buffer> metadata;
  ARROW_RETURN_NOT_OK(put.reader->ReadMetadata(&metadata));
  ARROW_RETURN_NOT_OK(put.writer->Close());
  if (metadata) {
    auto ref = nlohmann::json::parse(metadata->ToString(), nullptr, /*allow_exceptions=*/false);
    out->extra = ref.is_discarded() ? nlohmann::json(metadata->ToString()) : ref;
  }
  return arrow::Status::OK();
}

// ---------------------------------------------------------------------------------------
// Repetitions

// One repetition: `work(i, &result)` on every stream at once, released together.
template <typename Work>
std::vector<StreamResult> RunStreams(int streams, double* wall, const Work& work) {
  std::vector<StreamResult> results(streams);
  std::barrier start(streams + 1);
  std::vector<std::thread> threads;
  Clock::time_point t0;
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto begin = Clock::now();
      results[i].status = work(i, &results[i]);
      results[i].seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    });
  }
  t0 = Clock::now();
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  *wall = std::chrono::duration<double>(Clock::now() - t0).count();
  return results;
}

int Run(const Options& opt) {
  auto clients = ConnectAll(opt.endpoint, opt.streams);
  if (!clients.ok()) {
    std::fprintf(stderr, "flight_load: %s\n", clients.status().message().c_str());
    return 1;
  }
  const bool get = opt.mode == "get";
  PutPlan plan;
  if (!get) {
    auto made = MakePlan(opt);
    if (!made.ok()) {
      std::fprintf(stderr, "flight_load: generating the table: %s\n",
                   made.status().ToString().c_str());
      return 1;
    }
    plan = std::move(*made);
  }
  auto key_of = [&](int i) { return opt.streams == 1 ? opt.key : fmt::format("{}-{}", opt.key, i); };
  auto work = [&](int i, StreamResult* r) {
    return get ? ReadStream((*clients)[i].get(), opt.ticket, r)
               : WriteStream((*clients)[i].get(), key_of(i), plan, r);
  };
  const int warmup = opt.warmup >= 0 ? opt.warmup : (get ? 1 : 0);
  for (int rep = -warmup; rep < opt.reps; ++rep) {
    double cpu0 = CpuSeconds(), wall = 0;
    auto results = RunStreams(opt.streams, &wall, work);
    double cpu = CpuSeconds() - cpu0;
    int64_t rows = 0, bytes = 0, batches = 0;
    nlohmann::json per_stream = nlohmann::json::array();
    for (int i = 0; i < opt.streams; ++i) {
      const auto& r = results[i];
      if (!r.status.ok()) {
        std::fprintf(stderr, "flight_load: %s stream %d of %s %s: %s\n", opt.mode.c_str(), i,
                     opt.endpoint.c_str(),
                     (get ? "ticket '" + opt.ticket + "'" : "key '" + key_of(i) + "'").c_str(),
                     r.status.ToString().c_str());
        return 1;
      }
      if (get && opt.expect_rows >= 0 && r.rows != opt.expect_rows) {
        std::fprintf(stderr, "flight_load: get stream %d of ticket '%s': %lld rows, expected %lld\n",
                     i, opt.ticket.c_str(), static_cast<long long>(r.rows),
                     static_cast<long long>(opt.expect_rows));
        return 1;
      }
      rows += r.rows;
      bytes += r.bytes;
      batches += r.batches;
      nlohmann::json s = {{"seconds", r.seconds}, {"bytes", r.bytes}, {"rows", r.rows}};
      if (!r.extra.is_null()) s["put_result"] = r.extra;
      per_stream.push_back(std::move(s));
    }
    if (rep < 0) continue;  // warm-up
    nlohmann::json line = {{"mode", opt.mode},       {"endpoint", opt.endpoint},
                           {"label", opt.label},     {"rep", rep},
                           {"streams", opt.streams}, {"seconds", wall},
                           {"bytes", bytes},         {"rows", rows},
                           {"batches", batches},     {"bytes_per_s", bytes / wall},
                           {"client_cpu_s", cpu},    {"per_stream", per_stream},
                           {"keeps_freed_memory", !opt.return_memory}};
    if (get) line["ticket"] = opt.ticket;
    else line["key"] = opt.key;
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "%s%s %s x%d rep %d: %.3f GB in %.3f s = %.3f GB/s (client CPU %.2f s)\n",
                 opt.label.empty() ? "" : (opt.label + ": ").c_str(), opt.mode.c_str(),
                 get ? opt.ticket.c_str() : opt.key.c_str(), opt.streams, rep, bytes / 1e9, wall,
                 bytes / wall / 1e9, cpu);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool return_memory = false;
  for (int i = 1; i < argc; ++i) return_memory |= std::string(argv[i]) == "--return-memory";
  if (!return_memory) KeepFreedMemory();
  Options opt;
  CLI::App app{
      "Flight load client: N parallel DoGet or DoPut streams against a Flight server (Quiver "
      "or bench/baseline_server.py), each on its own connection; one JSON line per timed "
      "repetition on stdout, a human line on stderr. GB/s counts the batches' Arrow buffer "
      "bytes (pyarrow's nbytes), as the Python harnesses do.",
      "quiver_flight_load"};
  app.require_subcommand(1);
  auto common = [&](CLI::App* sub) {
    sub->add_option("--endpoint", opt.endpoint, "the server, grpc://HOST:PORT")->required();
    sub->add_option("--streams,-n", opt.streams, "parallel streams, one connection each")
        ->capture_default_str()->check(CLI::Range(1, 256));
    sub->add_option("--reps,-r", opt.reps, "timed repetitions (all streams at once each)")
        ->capture_default_str()->check(CLI::Range(1, 100000));
    sub->add_option("--label", opt.label, "a name copied into the JSON and the human line");
    sub->add_flag("--return-memory", opt.return_memory,
                  "let the allocators return freed memory to the kernel (their default), so "
                  "that every batch faults in fresh pages; by default the client keeps it "
                  "for the next batch (malloc for Arrow's buffers too, no mmap, 1 GiB kept)");
  };
  auto* get = app.add_subcommand("get", "DoGet of one ticket on every stream, consuming "
                                        "each batch as it arrives (nothing is concatenated)");
  common(get);
  get->add_option("--ticket,-t", opt.ticket,
                  "the ticket, sent as given: a key (s/o), key@VERSION or a JSON ticket "
                  "(docs/api.md); the baseline server takes a key")
      ->required();
  get->add_option("--expect-rows", opt.expect_rows,
                  "fail unless every stream receives this many rows");
  get->add_option("--warmup", opt.warmup, "untimed repetitions first [default: 1]")
      ->check(CLI::Range(0, 1000));
  auto* put = app.add_subcommand("put", "DoPut of a generated table on every stream (stream i "
                                        "puts KEY-i; KEY itself with one stream)");
  common(put);
  put->add_option("--key,-k", opt.key, "the key to put under, SESSION/OBJECT")->required();
  put->add_option("--size", opt.size_text, "table size (Arrow bytes), e.g. 1GiB")
      ->capture_default_str();
  put->add_option("--batch", opt.batch_text, "record batch size, e.g. 64MiB")
      ->capture_default_str();
  put->add_option("--seed", opt.seed, "data generator seed")->capture_default_str();
  put->add_option("--warmup", opt.warmup, "untimed repetitions first [default: 0]")
      ->check(CLI::Range(0, 1000));
  CLI11_PARSE(app, argc, argv);

  opt.mode = get->parsed() ? "get" : "put";
  if (put->parsed()) {
    auto size = ParseSize(opt.size_text);
    auto batch = ParseSize(opt.batch_text);
    for (auto [what, parsed] : {std::pair{"--size", &size}, std::pair{"--batch", &batch}}) {
      if (!parsed->ok()) {
        std::fprintf(stderr, "flight_load: bad %s: %s\n", what,
                     parsed->status().message().c_str());
        return 2;
      }
      if (**parsed < kRowBytes) {
        std::fprintf(stderr, "flight_load: bad %s: at least %lld bytes (one row)\n", what,
                     static_cast<long long>(kRowBytes));
        return 2;
      }
    }
    opt.size = *size;
    opt.batch = *batch;
    if (opt.key.find('/') == std::string::npos || opt.key.front() == '/' ||
        opt.key.back() == '/') {
      std::fprintf(stderr, "flight_load: bad --key '%s': expected SESSION/OBJECT\n",
                   opt.key.c_str());
      return 2;
    }
  } else if (opt.ticket.empty()) {
    std::fprintf(stderr, "flight_load: bad --ticket: empty\n");
    return 2;
  }
  if (opt.endpoint.find("://") == std::string::npos) {
    std::fprintf(stderr, "flight_load: bad --endpoint '%s': expected grpc://HOST:PORT\n",
                 opt.endpoint.c_str());
    return 2;
  }
  return Run(opt);
}
