#include "cli/token_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include <arrow/buffer.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/atomic_file.h"
#include "cli/exit_codes.h"
#include "server/auth.h"

namespace quiver {

namespace {

struct TokenFlags {
  std::string file;
  std::string name;
  std::string tenant;
  std::vector<std::string> roles;
  std::vector<std::string> sources;
  bool as_json = false;
};

// An exclusive lock on FILE.lock for a read-modify-write of FILE: two `token add`s at once
// must not lose one of the tokens.
class FileLock {
 public:
  static arrow::Result<std::unique_ptr<FileLock>> Take(const std::string& file) {
    const std::string path = file + ".lock";
    int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      return arrow::Status::IOError("cannot open lock file '", path, "': ", std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return arrow::Status::IOError("cannot lock '", path, "': ", std::strerror(errno));
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() { ::close(fd_); }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// Replace the file with `records`, readable by its owner only.
arrow::Status WriteTokens(const std::string& path, const std::vector<TokenRecord>& records) {
  ARROW_ASSIGN_OR_RAISE(auto out, AtomicFile::Create(path));
  ARROW_RETURN_NOT_OK(out->stream()->Write(arrow::Buffer::FromString(TokensFileText(records))));
  ARROW_RETURN_NOT_OK(out->stream()->Close());
  ARROW_RETURN_NOT_OK(out->Commit());
  if (::chmod(path.c_str(), 0600) != 0) {
    return arrow::Status::IOError("chmod 600 '", path, "': ", std::strerror(errno));
  }
  return arrow::Status::OK();
}

arrow::Status Add(const TokenFlags& f) {
  ARROW_ASSIGN_OR_RAISE(auto lock, FileLock::Take(f.file));
  ARROW_ASSIGN_OR_RAISE(auto records, ReadTokensFile(f.file, /*missing_ok=*/true));
  for (const auto& r : records) {
    if (r.name == f.name) {
      return arrow::Status::Invalid("a token named '", f.name, "' is already in '", f.file,
                                    "' (revoke it first)");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto made, MakeToken(f.name, f.tenant, f.roles, f.sources));
  records.push_back(made.second);
  ARROW_RETURN_NOT_OK(WriteTokens(f.file, records));
  if (f.as_json) {
    std::cout << nlohmann::json{{"name", f.name}, {"token", made.first}}.dump() << std::endl;
  } else {
    std::cout << made.first << std::endl;
    std::cerr << "token '" << f.name << "' added to " << f.file
              << "; it is shown only now. A running server takes it after SIGHUP." << std::endl;
  }
  return arrow::Status::OK();
}

arrow::Status List(const TokenFlags& f) {
  ARROW_ASSIGN_OR_RAISE(auto records, ReadTokensFile(f.file, /*missing_ok=*/false));
  if (f.as_json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : records) {
      out.push_back({{"name", r.name}, {"id", r.id}, {"tenant", r.tenant}, {"roles", r.roles},
                     {"sources", r.sources}, {"created_ms", r.created_ms}});
    }
    std::cout << out.dump() << std::endl;
    return arrow::Status::OK();
  }
  std::cout << fmt::format("{:<24} {:<14} {:<16} {:<22} {}\n", "NAME", "ID", "TENANT", "ROLES",
                           "SOURCES");
  for (const auto& r : records) {
    std::cout << fmt::format("{:<24} {:<14} {:<16} {:<22} {}\n", r.name, r.id, r.tenant,
                             fmt::format("{}", fmt::join(r.roles, ",")),
                             fmt::format("{}", fmt::join(r.sources, ",")));
  }
  return arrow::Status::OK();
}

arrow::Status Revoke(const TokenFlags& f) {
  ARROW_ASSIGN_OR_RAISE(auto lock, FileLock::Take(f.file));
  ARROW_ASSIGN_OR_RAISE(auto records, ReadTokensFile(f.file, /*missing_ok=*/false));
  const size_t before = records.size();
  std::erase_if(records, [&](const TokenRecord& r) { return r.name == f.name; });
  if (records.size() == before) {
    return arrow::Status::KeyError("no token named '", f.name, "' in '", f.file, "'");
  }
  ARROW_RETURN_NOT_OK(WriteTokens(f.file, records));
  std::cerr << "token '" << f.name << "' revoked; a running server drops it after SIGHUP"
            << std::endl;
  return arrow::Status::OK();
}

void Run(const char* command, arrow::Status st) {
  if (st.ok()) return;
  Fail(command, st.IsKeyError() ? kExitNotFound : st.IsIOError() ? kExitError : kExitUsage,
       st.message());
}

}  // namespace

void AddTokenCommands(CLI::App& app) {
  auto* token = app.add_subcommand(
      "token", "Manage the tokens file of a server with --auth tokens (docs/security.md)");
  token->require_subcommand(1);
  auto flags = std::make_shared<TokenFlags>();
  auto file_option = [flags](CLI::App* cmd) {
    cmd->add_option("--tokens-file", flags->file, "The tokens file (created by the first add)")
        ->required();
  };

  auto* add = token->add_subcommand(
      "add", "Make a token, print it once on stdout, and store its salted hash");
  file_option(add);
  add->add_option("--name", flags->name, "Unique name of the token (logs, audit log)")
      ->required();
  add->add_option("--tenant", flags->tenant,
                  "The tenant the token acts for: its keys live under this first segment. "
                  "Without one (operators), the token sees every tenant's keys [default: none]");
  add->add_option("--role", flags->roles, "reader, writer or admin (repeatable)")
      ->required()
      ->check(CLI::IsMember({"reader", "writer", "admin"}));
  add->add_option("--source", flags->sources,
                  "A query source the token may use, or 'artifacts' to fetch artifacts "
                  "(repeatable; * for all) [default: none]");
  add->add_flag("--json", flags->as_json, "Print {\"name\", \"token\"} as JSON");
  add->callback([flags] { Run("token add", Add(*flags)); });

  auto* list = token->add_subcommand("list", "List the tokens (never their secrets)");
  file_option(list);
  list->add_flag("--json", flags->as_json, "Print JSON for scripts instead of a table");
  list->callback([flags] { Run("token list", List(*flags)); });

  auto* revoke = token->add_subcommand("revoke", "Remove a token by name");
  file_option(revoke);
  revoke->add_option("--name", flags->name, "The token's name")->required();
  revoke->callback([flags] { Run("token revoke", Revoke(*flags)); });
}

}  // namespace quiver
