#include "cli/admin_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <arrow/array.h>
#include <arrow/scalar.h>
#include <arrow/table.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/server_option.h"
#include "client/quiver_client.h"
#include "common/config.h"

namespace quiver {

using nlohmann::json;

namespace {

struct Common {
  std::string server;
  Credentials credentials;
  bool as_json = false;
};

void AddCommon(CLI::App* cmd, Common* common) {
  cmd->add_option("--server", common->server, kServerOptionHelp);
  AddCredentialOptions(cmd, &common->credentials);
  cmd->add_flag("--json", common->as_json, "Print JSON for scripts instead of a table");
}

// Runs `body` with a connected client; any error ends the command with exit code 1.
template <typename Fn>
void WithClient(const Common& common, Fn body) {
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto client, QuiverClient::Connect(ServerLocation(common.server),
                                                              WithCredentials(common.credentials)));
    return body(*client);
  }();
  if (!st.ok()) {
    std::cerr << "quiver: " << st.message() << std::endl;
    throw CLI::RuntimeError(1);
  }
}

std::string Duration(int64_t ms) {
  int64_t s = ms / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void PrintRemoved(const Common& common, const std::string& result, const char* verb) {
  auto j = json::parse(result);
  if (common.as_json) {
    std::cout << j.dump(2) << std::endl;
    return;
  }
  const auto& keys = j.contains("removed") ? j["removed"] : j["deleted"];
  std::cout << fmt::format("{} {} {}", verb, keys.size(), keys.size() == 1 ? "entry" : "entries")
            << (j.value("dry_run", false) ? " (dry run: nothing removed)" : "") << std::endl;
  for (const auto& k : keys) std::cout << "  " << k.get<std::string>() << std::endl;
}

struct Row {
  std::string key;
  int64_t bytes, rows, created, last_access, expires;
  uint64_t accesses;
  double score;
  bool in_memory;
};

arrow::Result<std::vector<Row>> Rows(const arrow::Table& table) {
  ARROW_ASSIGN_OR_RAISE(auto combined, table.CombineChunksToBatch());
  auto col = [&](const char* name) { return combined->GetColumnByName(name); };
  auto key = std::static_pointer_cast<arrow::StringArray>(col("key"));
  auto bytes = std::static_pointer_cast<arrow::Int64Array>(col("bytes"));
  auto rows = std::static_pointer_cast<arrow::Int64Array>(col("rows"));
  auto created = std::static_pointer_cast<arrow::TimestampArray>(col("created"));
  auto last = std::static_pointer_cast<arrow::TimestampArray>(col("last_access"));
  auto expires = std::static_pointer_cast<arrow::TimestampArray>(col("expires"));
  auto accesses = std::static_pointer_cast<arrow::UInt64Array>(col("accesses"));
  auto score = std::static_pointer_cast<arrow::DoubleArray>(col("score"));
  auto in_memory = std::static_pointer_cast<arrow::BooleanArray>(col("in_memory"));
  std::vector<Row> out;
  for (int64_t i = 0; i < combined->num_rows(); ++i) {
    out.push_back(Row{key->GetString(i), bytes->Value(i), rows->Value(i), created->Value(i),
                      last->Value(i), expires->IsNull(i) ? 0 : expires->Value(i),
                      accesses->Value(i), score->Value(i), in_memory->Value(i)});
  }
  return out;
}

void AddLs(CLI::App& app) {
  auto common = std::make_shared<Common>();
  auto prefix = std::make_shared<std::string>();
  auto sort = std::make_shared<std::string>("key");
  auto reverse = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("ls", "List cached entries: key, size, rows, age, hits, "
                                       "score, expiry");
  AddCommon(cmd, common.get());
  cmd->add_option("--prefix", *prefix, "Only keys starting with this text");
  cmd->add_option("--sort", *sort, "Sort by key, size, rows, age, hits, score or expiry "
                                   "[default: key]")
      ->check(CLI::IsMember({"key", "size", "rows", "age", "hits", "score", "expiry"}));
  cmd->add_flag("--reverse", *reverse, "Reverse the order");
  cmd->callback([=] {
    WithClient(*common, [&](QuiverClient& client) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto table, client.Entries(*prefix));
      ARROW_ASSIGN_OR_RAISE(auto rows, Rows(*table));
      const int64_t now = NowMs();
      auto by = [&](const Row& a, const Row& b) {
        if (*sort == "size") return a.bytes > b.bytes;
        if (*sort == "rows") return a.rows > b.rows;
        if (*sort == "age") return a.created < b.created;
        if (*sort == "hits") return a.accesses > b.accesses;
        if (*sort == "score") return a.score < b.score;
        if (*sort == "expiry") return (a.expires ? a.expires : INT64_MAX) < (b.expires ? b.expires : INT64_MAX);
        return a.key < b.key;
      };
      std::stable_sort(rows.begin(), rows.end(), by);
      if (*reverse) std::reverse(rows.begin(), rows.end());
      if (common->as_json) {
        json out = json::array();
        for (const auto& r : rows) {
          out.push_back({{"key", r.key}, {"bytes", r.bytes}, {"rows", r.rows},
                         {"created_ms", r.created}, {"last_access_ms", r.last_access},
                         {"hits", r.accesses > 0 ? r.accesses - 1 : 0}, {"score", r.score},
                         {"expires_ms", r.expires ? json(r.expires) : json(nullptr)},
                         {"in_memory", r.in_memory}});
        }
        std::cout << out.dump(2) << std::endl;
        return arrow::Status::OK();
      }
      std::cout << fmt::format("{:<40} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9}\n", "KEY", "SIZE",
                               "ROWS", "AGE", "HITS", "SCORE", "EXPIRES");
      for (const auto& r : rows) {
        std::string key = r.key.size() > 40 ? r.key.substr(0, 37) + "..." : r.key;
        std::string expires = !r.expires ? "-"
                              : r.expires <= now ? "expired"
                                                 : "in " + Duration(r.expires - now);
        std::cout << fmt::format("{:<40} {:>10} {:>10} {:>8} {:>6} {:>9.2f} {:>9}{}\n", key,
                                 FormatByteSize(r.bytes), r.rows, Duration(now - r.created),
                                 r.accesses > 0 ? r.accesses - 1 : 0, r.score, expires, r.in_memory ? "  (memory)" : "");
      }
      std::cout << rows.size() << (rows.size() == 1 ? " entry" : " entries") << std::endl;
      return arrow::Status::OK();
    });
  });
}

void AddStats(CLI::App& app) {
  auto common = std::make_shared<Common>();
  auto* cmd = app.add_subcommand("stats", "Show cache statistics");
  AddCommon(cmd, common.get());
  cmd->callback([=] {
    WithClient(*common, [&](QuiverClient& client) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto text, client.Action("stats", ""));
      auto j = json::parse(text);
      if (common->as_json) {
        std::cout << j.dump(2) << std::endl;
        return arrow::Status::OK();
      }
      const auto& b = j["budget"];
      const auto& m = j["memory"];
      const auto& q = j["queries"];
      const auto& index = j["index"];
      std::cout << fmt::format("node         {}, index {} ({}{}{})\n", j["node"].get<std::string>(),
                               index["kind"].get<std::string>(),
                               index["state"].get<std::string>(),
                               index["detail"].get<std::string>().empty() ? "" : ": ",
                               index["detail"].get<std::string>());
      if (index["shared"].get<bool>()) {
        std::cout << fmt::format(
            "cluster      {} fills streamed from other nodes, {} waited for, {} taken over, {} "
            "fenced\n",
            q["remote_joins"].get<int64_t>(), q["waits"].get<int64_t>(),
            q["takeovers"].get<int64_t>(), q["fenced"].get<int64_t>());
      }
      std::cout << fmt::format(
          "entries      {} keys, {} versions, {}\n"
          "disk budget  {} of {} used ({} policy, half_life {}), {} evictions\n"
          "memory tier  {} of {} in {} entries, {} hits\n"
          "objects      {} puts ({} failed), {} gets ({} hits, {} misses, {} not modified)\n"
          "queries      {} hits, {} misses ({} joined), {} bypasses, {} executions, {} failed\n"
          "invalidated  {} entries\n",
          j["entries"].get<int64_t>(), j["versions"].get<int64_t>(),
          FormatByteSize(j["bytes"].get<int64_t>()), FormatByteSize(b["used"].get<int64_t>()),
          FormatByteSize(b["cache_size"].get<int64_t>()), b["policy"].get<std::string>(),
          b["half_life"].get<double>(), j["evictions"].get<int64_t>(),
          FormatByteSize(m["bytes"].get<int64_t>()), FormatByteSize(m["capacity"].get<int64_t>()),
          m["entries"].get<int64_t>(), m["hits"].get<int64_t>(), j["puts"].get<int64_t>(),
          j["put_failures"].get<int64_t>(), j["gets"].get<int64_t>(), j["hits"].get<int64_t>(),
          j["misses"].get<int64_t>(), j["not_modified"].get<int64_t>(), q["hits"].get<int64_t>(),
          q["misses"].get<int64_t>(), q["joins"].get<int64_t>(), q["bypasses"].get<int64_t>(),
          q["executions"].get<int64_t>(), q["failures"].get<int64_t>(),
          j["invalidations"].get<int64_t>());
      if (const auto& d = j["disk_tier"]; d.is_object()) {
        std::cout << fmt::format(
            "disk tier    {} of {} in {} entries, {} hits, {} copies made, {} damaged\n",
            FormatByteSize(d["bytes"].get<int64_t>()), FormatByteSize(d["capacity"].get<int64_t>()),
            d["entries"].get<int64_t>(), d["hits"].get<int64_t>(),
            d["copies_made"].get<int64_t>(), d["damaged"].get<int64_t>());
      }
      if (j["damaged"].get<int64_t>() > 0) {
        std::cout << fmt::format("damaged      {} entries failed authentication, quarantined\n",
                                 j["damaged"].get<int64_t>());
      }
      if (const auto& r = j["recovery"]; r.is_object()) {
        const bool journal = r["source"].get<std::string>() == "journal";
        std::cout << fmt::format(
            "started      {} keys in {} from {}{}\n", r["keys"].get<int64_t>(),
            fmt::format("{} ms", r["elapsed_ms"].get<int64_t>()),
            journal ? "the index journal" : "the manifests",
            journal ? fmt::format(" ({} snapshot rows, {} log records)",
                                  r["snapshot_rows"].get<int64_t>(),
                                  r["log_records"].get<int64_t>())
                    : r["why"].get<std::string>().empty()
                          ? std::string()
                          : " (" + r["why"].get<std::string>() + ")");
      }
      if (const auto& d = j["durability"]; d.is_object()) {
        std::cout << fmt::format("durability   {} ({} flushes, {} writes shared one, {} failed)\n",
                                 d["mode"].get<std::string>(), d["syncs"].get<int64_t>(),
                                 d["grouped"].get<int64_t>(), d["failures"].get<int64_t>());
      }
      return arrow::Status::OK();
    });
  });
}

void AddShrink(CLI::App& app) {
  auto common = std::make_shared<Common>();
  auto one = std::make_shared<bool>(false);
  auto below = std::make_shared<std::string>();
  auto dry_run = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("shrink", "Evict the lowest-scored entry, or entries until "
                                           "the cache holds at most SIZE");
  AddCommon(cmd, common.get());
  auto* one_opt = cmd->add_flag("--one", *one, "Evict the single lowest-scored entry");
  auto* below_opt = cmd->add_option("--below", *below, "Evict until at most SIZE (e.g. 10GiB) "
                                                       "is stored");
  one_opt->excludes(below_opt);
  cmd->add_flag("--dry-run", *dry_run, "Only list what would be evicted");
  cmd->callback([=] {
    if (!*one && below->empty()) throw CLI::ValidationError("shrink", "give --one or --below SIZE");
    WithClient(*common, [&](QuiverClient& client) -> arrow::Status {
      json body = {{"dry_run", *dry_run}};
      if (*one) {
        body["one"] = true;
      } else {
        ARROW_ASSIGN_OR_RAISE(auto bytes, ParseByteSize(*below));
        body["below_bytes"] = bytes;
      }
      ARROW_ASSIGN_OR_RAISE(auto text, client.Action("shrink", body.dump()));
      PrintRemoved(*common, text, *dry_run ? "would evict" : "evicted");
      return arrow::Status::OK();
    });
  });
}

void AddInvalidate(CLI::App& app) {
  auto common = std::make_shared<Common>();
  auto key = std::make_shared<std::string>();
  auto tag = std::make_shared<std::string>();
  auto no_cascade = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("invalidate", "Remove KEY and everything derived from it, or "
                                               "every entry carrying --tag TAG");
  AddCommon(cmd, common.get());
  auto* key_opt = cmd->add_option("key", *key, "The key (s/o, or @q/<hash> for a query result)");
  auto* tag_opt = cmd->add_option("--tag", *tag, "Invalidate every entry carrying this tag");
  key_opt->excludes(tag_opt);
  cmd->add_flag("--no-cascade", *no_cascade, "Remove only KEY, not what depends on it");
  cmd->callback([=] {
    if (key->empty() && tag->empty()) throw CLI::ValidationError("invalidate", "give KEY or --tag TAG");
    WithClient(*common, [&](QuiverClient& client) -> arrow::Status {
      std::string text;
      if (!tag->empty()) {
        ARROW_ASSIGN_OR_RAISE(text, client.Action("invalidate-tag", json{{"tag", *tag}}.dump()));
      } else {
        ARROW_ASSIGN_OR_RAISE(text, client.Action("invalidate",
                                                  json{{"key", *key}, {"cascade", !*no_cascade}}.dump()));
      }
      PrintRemoved(*common, text, "invalidated");
      return arrow::Status::OK();
    });
  });
}

void AddConfig(CLI::App& app) {
  auto* config = app.add_subcommand("config", "Show or change run-time settings (half_life, "
                                              "cache_size, memory_size); changes persist");
  config->require_subcommand(1);
  auto common_get = std::make_shared<Common>();
  auto* get = config->add_subcommand("get", "Show the run-time settings");
  AddCommon(get, common_get.get());
  get->callback([=] {
    WithClient(*common_get, [&](QuiverClient& client) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto text, client.Action("config-get", ""));
      auto j = json::parse(text);
      if (common_get->as_json) {
        std::cout << j.dump(2) << std::endl;
      } else {
        std::cout << fmt::format("half_life    {}\ncache_size   {}\nmemory_size  {}\npolicy       {}\n",
                                 j["half_life"].get<double>(),
                                 FormatByteSize(j["cache_size"].get<int64_t>()),
                                 FormatByteSize(j["memory_size"].get<int64_t>()),
                                 j["policy"].get<std::string>());
      }
      return arrow::Status::OK();
    });
  });
  auto common_set = std::make_shared<Common>();
  auto assignments = std::make_shared<std::vector<std::string>>();
  auto* set = config->add_subcommand("set", "Change settings: NAME=VALUE ... (half_life=2000 "
                                            "cache_size=20GiB memory_size=512MiB)");
  AddCommon(set, common_set.get());
  set->add_option("settings", *assignments, "NAME=VALUE pairs")->required();
  set->callback([=] {
    json body = json::object();
    for (const auto& a : *assignments) {
      auto eq = a.find('=');
      if (eq == std::string::npos) throw CLI::ValidationError("config set", "'" + a + "' is not NAME=VALUE");
      std::string name = a.substr(0, eq), value = a.substr(eq + 1);
      if (name == "half_life") {
        size_t used = 0;
        double number = 0;
        try {
          number = std::stod(value, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != value.size()) {
          throw CLI::ValidationError("config set", "half_life '" + value + "' is not a number");
        }
        body[name] = number;
      } else if (name == "cache_size" || name == "memory_size") {
        auto bytes = ParseByteSize(value);
        if (!bytes.ok()) throw CLI::ValidationError("config set", bytes.status().message());
        body[name] = *bytes;
      } else {
        throw CLI::ValidationError("config set", "unknown setting '" + name +
                                                     "' (half_life, cache_size, memory_size)");
      }
    }
    WithClient(*common_set, [&](QuiverClient& client) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto text, client.Action("config-set", body.dump()));
      auto j = json::parse(text);
      if (common_set->as_json) {
        std::cout << j.dump(2) << std::endl;
        return arrow::Status::OK();
      }
      std::cout << "saved:";
      for (auto& [name, value] : body.items()) {
        std::cout << " " << name << "="
                  << (name == "half_life" ? fmt::format("{}", value.get<double>())
                                          : FormatByteSize(value.get<int64_t>()));
      }
      std::cout << std::endl;
      return arrow::Status::OK();
    });
  });
}

}  // namespace

void AddAdminCommands(CLI::App& app) {
  AddLs(app);
  AddStats(app);
  AddShrink(app);
  AddInvalidate(app);
  AddConfig(app);
}

}  // namespace quiver
