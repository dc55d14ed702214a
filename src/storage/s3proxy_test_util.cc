#include "storage/s3proxy_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include <arrow/filesystem/s3fs.h>
#include <fmt/format.h>

namespace quiver::testing_util {

namespace {

std::string skip_reason;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

bool OnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string rest = path ? path : "";
  size_t start = 0;
  while (start <= rest.size()) {
    size_t colon = rest.find(':', start);
    if (colon == std::string::npos) colon = rest.size();
    std::string candidate = rest.substr(start, colon - start) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = colon + 1;
  }
  return false;
}

std::string LogTail(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > 3000 ? text.substr(text.size() - 3000) : text;
}

std::unique_ptr<S3Proxy>& Instance() {
  static std::unique_ptr<S3Proxy> instance;
  return instance;
}

}  // namespace

S3Proxy* S3Proxy::Shared() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef QUIVER_S3PROXY_DEFAULT_JAR
    std::string jar = QUIVER_S3PROXY_DEFAULT_JAR;
#else
    std::string jar;
#endif
    if (const char* env = std::getenv("QUIVER_S3PROXY_JAR")) jar = env;
    if (jar.empty() || ::access(jar.c_str(), R_OK) != 0) {
      skip_reason = "no s3proxy jar at '" + jar +
                    "' (run scripts/setup.sh, or set QUIVER_S3PROXY_JAR)";
      return;
    }
    if (!OnPath("java") || !OnPath("openssl")) {
      skip_reason = "s3proxy needs java and openssl on PATH";
      return;
    }
    std::unique_ptr<S3Proxy> proxy(new S3Proxy());
    auto st = proxy->Start(jar);
    if (!st.ok()) {
      // Installed but broken is a failure, not a skip: Shared() stays null and tests fail.
      skip_reason = "FAILED to start s3proxy: " + st.ToString();
      return;
    }
    Instance() = std::move(proxy);
    std::atexit([] { Instance().reset(); });
  });
  return Instance().get();
}

const std::string& S3Proxy::SkipReason() { return skip_reason; }

arrow::Status S3Proxy::Start(const std::string& jar) {
  char tmpl[] = "/tmp/quiver-s3proxy-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return arrow::Status::IOError("mkdtemp failed");
  dir_ = tmpl;
  ca_file_ = dir_ + "/cert.pem";
  const std::string key = dir_ + "/key.pem", p12 = dir_ + "/keystore.p12";
  const std::string log = dir_ + "/s3proxy.log";
  std::string cmd = fmt::format(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout {} -out {} -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost "
      "-addext basicConstraints=critical,CA:TRUE >>{} 2>&1 && "
      "openssl pkcs12 -export -in {} -inkey {} -out {} -name s3proxy "
      "-passout pass:quiver-keystore >>{} 2>&1",
      key, ca_file_, log, ca_file_, key, p12, log);
  if (std::system(cmd.c_str()) != 0) {
    return arrow::Status::IOError("making the certificate failed: ", LogTail(log));
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreePort();
    endpoint_ = fmt::format("127.0.0.1:{}", port_);
    const std::string conf = dir_ + "/s3proxy.conf";
    std::ofstream(conf) << "s3proxy.secure-endpoint=https://" << endpoint_ << "\n"
                        << "s3proxy.keystore-path=" << p12 << "\n"
                        << "s3proxy.keystore-password=quiver-keystore\n"
                        << "s3proxy.authorization=aws-v2-or-v4\n"
                        << "s3proxy.identity=" << access_key_ << "\n"
                        << "s3proxy.credential=" << secret_key_ << "\n"
                        << "jclouds.provider=transient\n"
                        << "jclouds.identity=unused\njclouds.credential=unused\n";
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, 0);
      ::execlp("java", "java", "-Xmx512m", "-jar", jar.c_str(), "--properties", conf.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Ready when the port accepts and a bucket can be created over TLS (deadline 60 s).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline && ::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Accepts(port_) && MakeBucket().ok()) return arrow::Status::OK();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return arrow::Status::IOError("s3proxy did not start: ", LogTail(log));
}

S3Proxy::~S3Proxy() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

S3StoreOptions S3Proxy::StoreOptions(const std::string& bucket) const {
  S3StoreOptions o;
  o.bucket = bucket;
  o.region = region_;
  o.endpoint_override = endpoint_;
  o.scheme = "https";
  o.path_style = true;
  o.ca_file = ca_file_;
  o.access_key = access_key_;
  o.secret_key = secret_key_;
  o.connect_timeout_s = 2;
  o.max_retries = 2;
  return o;
}

arrow::Result<std::string> S3Proxy::MakeBucket() {
  static std::atomic<int> counter{0};
  ARROW_RETURN_NOT_OK(EnsureS3Initialized());
  auto options = arrow::fs::S3Options::FromAccessKey(access_key_, secret_key_);
  options.region = region_;
  options.endpoint_override = endpoint_;
  options.scheme = "https";
  options.tls_ca_file_path = ca_file_;
  options.allow_bucket_creation = true;
  options.connect_timeout = 1;
  options.retry_strategy = arrow::fs::S3RetryStrategy::GetAwsStandardRetryStrategy(1);
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow::fs::S3FileSystem::Make(options));
  std::string bucket = fmt::format("quiver-{}-{}", ::getpid(), counter++);
  ARROW_RETURN_NOT_OK(fs->CreateDir(bucket, /*recursive=*/false));
  return bucket;
}

}  // namespace quiver::testing_util
