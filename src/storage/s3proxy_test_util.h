// A real S3-compatible server for tests: s3proxy (Java, transient in-memory backend) on
// 127.0.0.1, HTTPS only with a self-signed certificate made for it. The same as
// tests/s3proxy.py for the Python tests.
//
// S3Proxy::Shared() starts one per test binary on first use and stops it at exit; tests make a
// fresh bucket each (MakeBucket). When java or the jar is missing, Shared() is null and
// SkipReason() says why: tests GTEST_SKIP with it. The jar is $QUIVER_S3PROXY_JAR or the one
// scripts/setup.sh fetches into .tools/s3proxy/.
#pragma once

#include <string>

#include <arrow/result.h>

#include "storage/s3_blob_store.h"

namespace quiver::testing_util {

class S3Proxy {
 public:
  /// \brief The binary's s3proxy, started on first use; null when it cannot run.
  static S3Proxy* Shared();
  /// Why Shared() is null.
  static const std::string& SkipReason();

  ~S3Proxy();

  const std::string& endpoint() const { return endpoint_; }  ///< "127.0.0.1:PORT"
  const std::string& ca_file() const { return ca_file_; }
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }
  const std::string& region() const { return region_; }
  const std::string& dir() const { return dir_; }

  /// \brief Create a fresh, empty bucket; returns its name.
  arrow::Result<std::string> MakeBucket();
  /// \brief Options for a store on `bucket` of this server (no SSE-C).
  S3StoreOptions StoreOptions(const std::string& bucket) const;

 private:
  S3Proxy() = default;
  arrow::Status Start(const std::string& jar);

  std::string dir_, ca_file_, endpoint_;
  std::string access_key_ = "quiver-test-access";
  std::string secret_key_ = "quiver-test-secret-do-not-log";
  std::string region_ = "eu-west-3";
  int port_ = 0;
  int pid_ = -1;
};

}  // namespace quiver::testing_util
