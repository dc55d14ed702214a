// Test helper: runs a real redis-server or valkey-server on 127.0.0.1, on a free port, in a
// temporary directory, optionally with TLS (a self-signed certificate made here) and a
// password. Header-only so any test binary can use it; it needs quiver_redis and
// OpenSSL::Crypto.
//
//   ASSERT_OK_AND_ASSIGN(auto server, RedisServerProcess::Start({.binary = "valkey-server"}));
//   ConnectionPool pool(server->connect_options());
//
// The server is started by the calling thread and asked to die with it
// (PR_SET_PDEATHSIG), so a crashed test leaves no server behind. Start it from a thread
// that outlives it -- the test's main thread, as GoogleTest's fixtures do.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <gtest/gtest.h>

#include "redis/redis_client.h"

namespace quiver::redis::test {

/// \brief `size` pseudo-random bytes, the same for the same seed (binary-safety checks).
inline std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

/// \brief Milliseconds since `start` on the steady clock.
inline int64_t ElapsedMs(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - start)
      .count();
}

/// \brief How often the server ran `command` (e.g. "evalsha", "script|load") since it
/// started or its last CONFIG RESETSTAT; -1 if it cannot be asked.
inline int64_t CommandCalls(ConnectionPool* pool, const std::string& command) {
  auto info = pool->Command({"INFO", "commandstats"});
  if (!info.ok()) return -1;
  const std::string field = "cmdstat_" + command + ":calls=";
  size_t at = info->str.find(field);
  if (at == std::string::npos) return 0;
  return std::strtoll(info->str.c_str() + at + field.size(), nullptr, 10);
}

/// \brief The absolute path of an executable found on PATH, or "" if there is none.
inline std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    struct stat info;
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

/// \brief The Redis-compatible servers installed on PATH, among redis-server and
/// valkey-server. QUIVER_TEST_REDIS_SERVERS (comma-separated names) narrows the choice.
inline std::vector<std::string> AvailableRedisServers() {
  std::vector<std::string> wanted = {"redis-server", "valkey-server"};
  if (const char* env = std::getenv("QUIVER_TEST_REDIS_SERVERS"); env != nullptr) {
    wanted.clear();
    std::stringstream names(env);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (!name.empty()) wanted.push_back(name);
    }
  }
  std::vector<std::string> found;
  for (const auto& name : wanted) {
    if (!FindOnPath(name).empty()) found.push_back(name);
  }
  return found;
}

/// \brief A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
inline arrow::Result<int> PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return arrow::Status::IOError("socket: ", std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    int err = errno;
    ::close(fd);
    return arrow::Status::IOError("bind 127.0.0.1:0: ", std::strerror(err));
  }
  ::close(fd);
  return static_cast<int>(ntohs(address.sin_port));
}

/// \brief Writes a self-signed certificate (P-256 key, valid for a day) for the IP address
/// `ip`: CN=ip and subjectAltName IP:ip. It serves as its own CA file.
inline arrow::Status MakeSelfSignedCertificate(const std::string& cert_path,
                                               const std::string& key_path,
                                               const std::string& ip = "127.0.0.1") {
  auto fail = [](const char* what) { return arrow::Status::IOError("certificate: ", what); };
  EVP_PKEY* key = nullptr;
  {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
        EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr), &EVP_PKEY_CTX_free);
    if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) != 1 ||
        EVP_PKEY_keygen(ctx.get(), &key) != 1) {
      return fail("key generation failed");
    }
  }
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key_guard(key, &EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  if (cert == nullptr) return fail("X509_new failed");
  X509_set_version(cert.get(), 2);
  // Distinct serials: two certificates for the same name must not look like one.
  std::random_device entropy;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(entropy() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(ip.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string san = "IP:" + ip;
  const std::pair<int, const char*> extensions[] = {
      {NID_basic_constraints, "critical,CA:TRUE"},
      {NID_subject_key_identifier, "hash"},
      {NID_subject_alt_name, san.c_str()},
  };
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (extension == nullptr) return fail("bad extension");
    X509_add_ext(cert.get(), extension, -1);
    X509_EXTENSION_free(extension);
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) return fail("signing failed");

  FILE* key_file = std::fopen(key_path.c_str(), "w");
  if (key_file == nullptr) return fail("cannot write the key file");
  ::fchmod(::fileno(key_file), 0600);
  bool key_ok = PEM_write_PrivateKey(key_file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(key_file);
  FILE* cert_file = std::fopen(cert_path.c_str(), "w");
  if (cert_file == nullptr) return fail("cannot write the certificate file");
  bool cert_ok = PEM_write_X509(cert_file, cert.get()) == 1;
  std::fclose(cert_file);
  if (!key_ok || !cert_ok) return fail("PEM write failed");
  return arrow::Status::OK();
}

struct RedisServerOptions {
  /// Looked up on PATH: "redis-server" or "valkey-server".
  std::string binary = "redis-server";
  /// Serve TLS only (rediss://) with a self-signed certificate for 127.0.0.1.
  bool tls = false;
  /// Non-empty: the server requires this password (and connect_options() passes it).
  std::string requirepass;
};

/// \brief A Redis-compatible server process owned by a test.
class RedisServerProcess {
 public:
  /// \brief Start a server and wait (up to 10 s) until it answers.
  static arrow::Result<std::unique_ptr<RedisServerProcess>> Start(RedisServerOptions options) {
    std::unique_ptr<RedisServerProcess> server(new RedisServerProcess(std::move(options)));
    server->binary_path_ = FindOnPath(server->options_.binary);
    if (server->binary_path_.empty()) {
      return arrow::Status::IOError(server->options_.binary, " is not on PATH");
    }
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") +
                          "/quiver-redis-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      return arrow::Status::IOError("mkdtemp: ", std::strerror(errno));
    }
    server->dir_ = pattern;
    if (server->options_.tls) {
      server->cert_file_ = server->dir_ + "/server.crt";
      server->key_file_ = server->dir_ + "/server.key";
      ARROW_RETURN_NOT_OK(MakeSelfSignedCertificate(server->cert_file_, server->key_file_));
    }
    // The port can be taken between PickFreePort() and the server's bind(): try a few.
    arrow::Status status;
    for (int attempt = 0; attempt < 5; ++attempt) {
      ARROW_ASSIGN_OR_RAISE(server->port_, PickFreePort());
      status = server->Launch();
      if (status.ok()) return server;
    }
    return status;
  }

  ~RedisServerProcess() {
    (void)Stop();
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  RedisServerProcess(const RedisServerProcess&) = delete;
  RedisServerProcess& operator=(const RedisServerProcess&) = delete;

  /// \brief SIGTERM, then SIGKILL if it has not exited after 5 s.
  arrow::Status Stop() {
    if (pid_ <= 0) return arrow::Status::OK();
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return arrow::Status::OK();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Kill();
    return arrow::Status::IOError("the server ignored SIGTERM for 5 s; killed");
  }

  /// \brief SIGKILL: the server vanishes without closing anything politely.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  /// \brief Start again on the same port (stopping it first if it runs). Data is lost.
  arrow::Status Restart() {
    ARROW_RETURN_NOT_OK(Stop());
    return Launch();
  }

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  /// The certificate the server presents; for TLS it is also the CA file to trust.
  const std::string& ca_file() const { return cert_file_; }

  /// \brief "redis://127.0.0.1:PORT" or "rediss://127.0.0.1:PORT" (no password).
  std::string url() const {
    return std::string(options_.tls ? "rediss" : "redis") + "://127.0.0.1:" +
           std::to_string(port_);
  }

  /// \brief Options that reach this server: the URL, the password, the CA file.
  ConnectOptions connect_options() const {
    ConnectOptions options;
    options.url.tls = options_.tls;
    options.url.host = "127.0.0.1";
    options.url.port = port_;
    options.url.password = options_.requirepass;
    options.ca_file = cert_file_;
    return options;
  }

  /// \brief What the server wrote to stdout/stderr, for failure messages.
  std::string log() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  explicit RedisServerProcess(RedisServerOptions options) : options_(std::move(options)) {}

  std::vector<std::string> Arguments() const {
    std::vector<std::string> args = {binary_path_, "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", dir_, "--daemonize", "no"};
    std::string port = std::to_string(port_);
    if (options_.tls) {
      args.insert(args.end(), {"--port", "0", "--tls-port", port, "--tls-cert-file", cert_file_,
                               "--tls-key-file", key_file_, "--tls-ca-cert-file", cert_file_,
                               "--tls-auth-clients", "no"});
    } else {
      args.insert(args.end(), {"--port", port});
    }
    if (!options_.requirepass.empty()) {
      args.insert(args.end(), {"--requirepass", options_.requirepass});
    }
    return args;
  }

  // Spawns the server on port_ and waits until it answers.
  arrow::Status Launch() {
    std::vector<std::string> args = Arguments();
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::string log_path = dir_ + "/server.log";
    int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) {
      if (log_fd >= 0) ::close(log_fd);
      if (null_fd >= 0) ::close(null_fd);
      return arrow::Status::IOError("cannot open ", log_path);
    }
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    if (pid < 0) return arrow::Status::IOError("fork: ", std::strerror(errno));
    pid_ = pid;
    return WaitUntilReady();
  }

  arrow::Status WaitUntilReady() {
    ConnectOptions options = connect_options();
    options.connect_timeout = std::chrono::milliseconds(500);
    options.io_timeout = std::chrono::milliseconds(1000);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    arrow::Status last = arrow::Status::OK();
    while (std::chrono::steady_clock::now() < deadline) {
      int wstatus = 0;
      if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
        pid_ = -1;
        return arrow::Status::IOError(options_.binary, " on port ", port_,
                                      " exited at start; its log:\n", log());
      }
      auto connection = Connection::Connect(options);
      if (connection.ok()) {
        // Our process must be the one answering, not another server that took the port
        // before ours could bind it.
        auto reply = (*connection)->Command({"INFO", "server"});
        std::string expected = "process_id:" + std::to_string(pid_) + "\r\n";
        if (reply.ok() && reply->str.find(expected) != std::string::npos) {
          return arrow::Status::OK();
        }
        last = reply.ok() ? arrow::Status::IOError("INFO: not our server, or ",
                                                   reply->DebugString())
                          : reply.status();
      } else {
        last = connection.status();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill();
    return arrow::Status::IOError(options_.binary, " on port ", port_,
                                  " did not answer within 10 s (", last.ToString(),
                                  "); its log:\n", log());
  }

  RedisServerOptions options_;
  std::string binary_path_;
  std::string dir_;
  std::string cert_file_;
  std::string key_file_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// A test fixture parameterized by server binary ("redis-server", "valkey-server"): starts
/// the test's own server on demand.
class RedisServerTestBase : public ::testing::TestWithParam<std::string> {
 protected:
  RedisServerOptions Options(bool tls = false) const {
    RedisServerOptions options;
    options.binary = GetParam();
    options.tls = tls;
    return options;
  }

  // Starts the fixture's server; call through ASSERT_NO_FATAL_FAILURE.
  void StartServer(RedisServerOptions options) {
    auto server = RedisServerProcess::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).ValueUnsafe();
  }

  std::unique_ptr<Connection> Connect(const ConnectOptions& options) {
    auto connection = Connection::Connect(options);
    EXPECT_TRUE(connection.ok()) << connection.status().ToString();
    return connection.ok() ? std::move(connection).ValueUnsafe() : nullptr;
  }

  std::unique_ptr<RedisServerProcess> server_;
};

/// \brief A parameterized test's name for a server binary ("redis_server").
inline std::string ServerName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace quiver::redis::test
