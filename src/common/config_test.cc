#include "common/config.h"

#include <cstdio>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(ByteSize, ParsesUnits) {
  EXPECT_EQ(*ParseByteSize("123"), 123);
  EXPECT_EQ(*ParseByteSize("64MiB"), 64 << 20);
  EXPECT_EQ(*ParseByteSize("1.5 GB"), 1'500'000'000);
  EXPECT_EQ(*ParseByteSize("2kib"), 2048);
  EXPECT_FALSE(ParseByteSize("lots").ok());
  EXPECT_FALSE(ParseByteSize("5 parsecs").ok());
  EXPECT_FALSE(ParseByteSize("-1").ok());
  EXPECT_EQ(FormatByteSize(512), "512 B");
  EXPECT_EQ(FormatByteSize(3 << 20), "3.0 MiB");
}

std::string WriteTemp(const std::string& text) {
  char name[] = "/tmp/quiver-config-XXXXXX";
  int fd = mkstemp(name);
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(name) << text;
  return name;
}

TEST(ServerConfig, LoadsAndChecksArtifactSettings) {
  ServerConfig config;
  EXPECT_TRUE(config.artifacts.allowed_prefixes.empty());  // nothing allowed by default
  auto path = WriteTemp(R"({"artifacts": {"allowed_prefixes": ["file:///srv/a/", "s3://b/p/"],
                                          "max_workers": 2, "max_queue": 0, "timeout_s": 5,
                                          "default_ttl_s": 60}})");
  ASSERT_TRUE(config.LoadFile(path).ok());
  EXPECT_EQ(config.artifacts.allowed_prefixes.size(), 2u);
  EXPECT_EQ(config.artifacts.max_workers, 2);
  EXPECT_EQ(config.artifacts.max_queue, 0);
  EXPECT_EQ(config.artifacts.timeout_s, 5);
  EXPECT_EQ(config.artifacts.default_ttl_s, 60);
  EXPECT_TRUE(config.Validate().ok()) << config.Validate();

  auto typo = WriteTemp(R"({"artifacts": {"max_worker": 2}})");
  auto st = config.LoadFile(typo);
  EXPECT_NE(st.message().find("max_worker"), std::string::npos) << st;
  config.artifacts.max_workers = 0;
  EXPECT_NE(config.Validate().message().find("artifacts.max_workers"), std::string::npos);
  config.artifacts.max_workers = 1;
  config.artifacts.allowed_prefixes = {"/srv/a"};
  EXPECT_NE(config.Validate().message().find("/srv/a"), std::string::npos);
  std::remove(path.c_str());
  std::remove(typo.c_str());
}

TEST(ServerConfig, LoadsFieldsAndRejectsUnknown) {
  ServerConfig config;
  auto path = WriteTemp(R"({"data_dir": "/x", "max_object_bytes": "1MiB", "keep_versions": 5,
                            "validate_full_on_put": false, "cache_size": "2GiB",
                            "fill_memory_bytes": "8MiB",
                            "sources": {"d": {"driver": "sqlite", "uri": "/d.db", "ttl_s": 9}}})");
  ASSERT_TRUE(config.LoadFile(path).ok());
  EXPECT_FALSE(config.validate_full_on_put);
  EXPECT_EQ(config.cache_size, int64_t{2} << 30);
  EXPECT_EQ(config.fill_memory_bytes, 8 << 20);
  ASSERT_EQ(config.sources.size(), 1u);
  EXPECT_EQ(config.sources[0].name, "d");
  EXPECT_EQ(config.sources[0].ttl_s, 9);
  EXPECT_EQ(config.data_dir, "/x");
  EXPECT_EQ(config.max_object_bytes, 1 << 20);
  EXPECT_EQ(config.keep_versions, 5);
  EXPECT_EQ(config.listen, "grpc://127.0.0.1:8815");  // untouched default

  auto typo = WriteTemp(R"({"data_dri": "/x"})");
  auto st = config.LoadFile(typo);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("data_dri"), std::string::npos) << st;

  auto broken = WriteTemp("{not json");
  EXPECT_TRUE(config.LoadFile(broken).IsInvalid());
  std::remove(path.c_str());
  std::remove(typo.c_str());
  std::remove(broken.c_str());
}

TEST(ServerConfig, LoadsAndChecksSourceFreshness) {
  ServerConfig config;
  auto path = WriteTemp(R"({"sources": {
      "d": {"driver": "sqlite", "uri": "/d.db", "stale_while_revalidate_s": 30,
            "max_stale_while_revalidate_s": 120, "early_refresh_beta": 2.5},
      "e": {"driver": "sqlite", "uri": "/e.db"}}})");
  ASSERT_TRUE(config.LoadFile(path).ok());
  ASSERT_EQ(config.sources.size(), 2u);
  const SourceSpec& d = config.sources[0].name == "d" ? config.sources[0] : config.sources[1];
  const SourceSpec& e = config.sources[0].name == "d" ? config.sources[1] : config.sources[0];
  EXPECT_EQ(d.stale_while_revalidate_s, 30);
  EXPECT_EQ(MaxStaleWhileRevalidate(d), 120);
  EXPECT_EQ(d.early_refresh_beta, 2.5);
  // Defaults: no stale window (requests cannot raise it), XFetch with beta 1.
  EXPECT_EQ(e.stale_while_revalidate_s, 0);
  EXPECT_EQ(MaxStaleWhileRevalidate(e), 0);
  EXPECT_EQ(e.early_refresh_beta, 1.0);
  EXPECT_TRUE(config.Validate().ok()) << config.Validate();

  config.sources[0].max_stale_while_revalidate_s = 1;
  config.sources[0].stale_while_revalidate_s = 5;
  EXPECT_NE(config.Validate().message().find("exceeds max_stale_while_revalidate_s"),
            std::string::npos) << config.Validate();
  config.sources[0].max_stale_while_revalidate_s.reset();
  config.sources[0].stale_while_revalidate_s = -1;
  EXPECT_NE(config.Validate().message().find("stale_while_revalidate_s must be >= 0"),
            std::string::npos) << config.Validate();
  config.sources[0].stale_while_revalidate_s = 0;
  config.sources[0].early_refresh_beta = -1;
  EXPECT_NE(config.Validate().message().find("early_refresh_beta"), std::string::npos);
  std::remove(path.c_str());
}

TEST(ServerConfig, LoadsTheS3StoreAndKeys) {
  ServerConfig config;
  auto path = WriteTemp(R"({"store": "s3://bucket/pre/fix", "disk_tier_size": "5GiB",
                            "disk_tier": false, "encryption_key_file": "/k",
                            "encryption_old_key_files": ["/k0"],
                            "s3": {"region": "eu-west-3", "endpoint": "127.0.0.1:9000",
                                   "scheme": "http", "ca_file": "/ca.pem", "max_retries": 5,
                                   "sse_c_key_file": "/s", "sse_c_old_key_files": ["/s0", "/s1"],
                                   "readahead_bytes": "8MiB", "readahead_depth": 3}})");
  ASSERT_TRUE(config.LoadFile(path).ok());
  EXPECT_TRUE(config.s3_store());
  EXPECT_FALSE(config.disk_tier);
  EXPECT_EQ(config.disk_tier_size, int64_t{5} << 30);
  EXPECT_EQ(config.encryption_old_key_files, std::vector<std::string>{"/k0"});
  EXPECT_EQ(config.s3.region, "eu-west-3");
  EXPECT_EQ(config.s3.endpoint, "127.0.0.1:9000");
  EXPECT_EQ(config.s3.scheme, "http");
  EXPECT_EQ(config.s3.max_retries, 5);
  EXPECT_EQ(config.s3.sse_c_old_key_files.size(), 2u);
  EXPECT_EQ(config.s3.readahead_bytes, 8 << 20);
  EXPECT_EQ(config.s3.readahead_depth, 3);
  EXPECT_TRUE(config.Validate().ok()) << config.Validate();

  auto typo = WriteTemp(R"({"s3": {"regoin": "x"}})");
  auto st = config.LoadFile(typo);
  EXPECT_NE(st.message().find("s3: unknown field 'regoin'"), std::string::npos) << st;
  std::remove(path.c_str());
  std::remove(typo.c_str());
}

TEST(ServerConfig, TheS3StoreIsCheckedByName) {
  auto invalid = [](auto change, const char* says) {
    ServerConfig config;
    config.store = "s3://bucket";
    config.s3.region = "us-east-1";
    change(&config);
    auto st = config.Validate();
    EXPECT_FALSE(st.ok()) << says;
    EXPECT_NE(st.message().find(says), std::string::npos) << st;
  };
  invalid([](ServerConfig* c) { c->store = "gs://bucket"; }, "store 'gs://bucket'");
  invalid([](ServerConfig* c) { c->store = "s3://"; }, "names no bucket");
  invalid([](ServerConfig* c) { c->s3.region.clear(); }, "s3.region");
  invalid([](ServerConfig* c) { c->s3.scheme = "ftp"; }, "s3.scheme 'ftp'");
  invalid([](ServerConfig* c) { c->s3.max_retries = 99; }, "s3.max_retries");
  invalid([](ServerConfig* c) { c->s3.readahead_bytes = 10; }, "s3.readahead_bytes");
  invalid([](ServerConfig* c) { c->s3.readahead_depth = 0; }, "s3.readahead_depth");
  invalid([](ServerConfig* c) { c->s3.access_key = "AK"; }, "go together");
  invalid([](ServerConfig* c) { c->disk_tier_size = -1; }, "disk_tier_size");
}

TEST(ServerConfig, ValidateNamesTheField) {
  ServerConfig config;
  EXPECT_TRUE(config.Validate().ok());
  config.keep_versions = 0;
  EXPECT_NE(config.Validate().message().find("keep_versions"), std::string::npos);
}

TEST(ServerConfig, LogFormatIsTextOrJson) {
  ServerConfig config;
  EXPECT_EQ(config.log_format, "text");
  auto path = WriteTemp(R"({"log_format": "json"})");
  ASSERT_TRUE(config.LoadFile(path).ok());
  std::remove(path.c_str());
  EXPECT_EQ(config.log_format, "json");
  EXPECT_TRUE(config.Validate().ok());
  config.log_format = "xml";
  auto st = config.Validate();
  ASSERT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("log_format 'xml'"), std::string::npos) << st;
}

TEST(ServerConfig, SharedModeSettingsAreCheckedByName) {
  auto invalid = [](auto change, const char* field) {
    ServerConfig config;
    change(config);
    auto st = config.Validate();
    EXPECT_FALSE(st.ok()) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st;
  };
  invalid([](ServerConfig& c) { c.index = "memcached://h:1"; }, "index");
  invalid([](ServerConfig& c) { c.index_prefix = "a{b}"; }, "index_prefix");
  invalid([](ServerConfig& c) { c.index_prefix = ""; }, "index_prefix");
  invalid([](ServerConfig& c) { c.shared_failure = "maybe"; }, "shared_failure");
  invalid([](ServerConfig& c) { c.lease_ttl_s = 0.01; }, "lease_ttl_s");
  invalid([](ServerConfig& c) { c.fill_poll_s = 0; }, "fill_poll_s");
  invalid([](ServerConfig& c) { c.public_endpoint = "http://lb:80"; }, "public_endpoint");
  invalid([](ServerConfig& c) { c.advertise = "10.0.0.1:8815"; }, "advertise");
  ServerConfig shared;
  shared.index = "rediss://user:pw@redis.internal:6380/2";
  shared.index_prefix = "team-a:cache_1";
  shared.shared_failure = "closed";
  EXPECT_TRUE(shared.Validate().ok()) << shared.Validate();
  EXPECT_TRUE(shared.shared_index());
  EXPECT_FALSE(ServerConfig{}.shared_index());
  // The password never appears in an error about the index.
  shared.index = "memcached://user:hunter2@h:1";
  EXPECT_EQ(shared.Validate().message().find("hunter2"), std::string::npos);
}

TEST(ServerConfig, AddressesAreGrpcWithAPort) {
  for (const char* bad : {"http://127.0.0.1:0", "not a uri", "grpc://127.0.0.1", "127.0.0.1:1"}) {
    ServerConfig config;
    config.listen = bad;
    auto st = config.Validate();
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.message().find("--listen"), std::string::npos) << st;
    EXPECT_NE(st.message().find("only grpc://"), std::string::npos) << st;
    EXPECT_NE(st.message().find(bad), std::string::npos) << st;
  }
  ServerConfig config;
  for (const char* good : {"grpc://127.0.0.1:0", "grpc+tcp://localhost:8815", "grpc://[::1]:1"}) {
    config.listen = good;
    EXPECT_TRUE(config.Validate().ok()) << good << ": " << config.Validate();
  }
}

TEST(ServerConfig, SharedModeOnAWildcardNeedsAdvertise) {
  for (const char* wildcard : {"grpc://0.0.0.0:8815", "grpc://[::]:0"}) {
    ServerConfig config;
    config.listen = wildcard;
    config.auth.allow_unauthenticated = true;  // this test's subject is the address
    EXPECT_TRUE(config.Validate().ok()) << "embedded: " << config.Validate();
    EXPECT_EQ(config.AdvertisedEndpoint(8815),
              std::string(wildcard).substr(0, std::string(wildcard).rfind(':')) + ":8815");
    config.index = "redis://127.0.0.1:6379";
    auto st = config.Validate();
    ASSERT_FALSE(st.ok()) << wildcard;
    EXPECT_NE(st.message().find("--advertise"), std::string::npos) << st;
    EXPECT_NE(st.message().find("wildcard"), std::string::npos) << st;
    config.advertise = "grpc://10.0.0.11:8815";
    EXPECT_TRUE(config.Validate().ok()) << config.Validate();
    EXPECT_EQ(config.AdvertisedEndpoint(1234), "grpc://10.0.0.11:8815");
    config.advertise = "grpc://0.0.0.0:8815";
    EXPECT_NE(config.Validate().message().find("--advertise"), std::string::npos);
  }
}

TEST(ServerConfig, NoAuthOnANonLoopbackAddressIsRefusedUnlessAllowed) {
  for (const char* listen : {"grpc://0.0.0.0:8815", "grpc://10.1.2.3:8815", "grpc://[::]:0"}) {
    ServerConfig config;
    config.listen = listen;
    auto st = config.Validate();
    ASSERT_FALSE(st.ok()) << listen;
    EXPECT_NE(st.message().find("not a loopback address"), std::string::npos) << st;
    config.auth.allow_unauthenticated = true;
    EXPECT_TRUE(config.Validate().ok()) << config.Validate();
    config.auth.allow_unauthenticated = false;
    config.auth.mode = "tokens";
    config.auth.tokens_file = "tokens.json";
    EXPECT_TRUE(config.Validate().ok()) << config.Validate();
  }
  ServerConfig http;
  http.http.listen = "0.0.0.0:8080";
  EXPECT_NE(http.Validate().message().find("http.listen"), std::string::npos);
  ServerConfig loopback;
  loopback.listen = "grpc://[::1]:8815";
  loopback.http.listen = "localhost:8080";
  EXPECT_TRUE(loopback.Validate().ok()) << loopback.Validate();
}

TEST(ServerConfig, TlsListensOnGrpcTlsAndAdvertisesIt) {
  ServerConfig config;
  config.tls.cert = "cert.pem";
  config.tls.key = "key.pem";
  EXPECT_TRUE(config.Validate().ok()) << config.Validate();
  EXPECT_EQ(config.AdvertisedEndpoint(9000), "grpc+tls://127.0.0.1:9000");
  ServerConfig no_files;
  no_files.listen = "grpc+tls://127.0.0.1:0";
  EXPECT_NE(no_files.Validate().message().find("asks for TLS"), std::string::npos);
}

TEST(ServerConfig, AdvertisedEndpointIsTheListenHostWithTheRealPort) {
  ServerConfig config;
  config.listen = "grpc://127.0.0.1:0";
  EXPECT_EQ(config.AdvertisedEndpoint(4321), "grpc://127.0.0.1:4321");
  config.listen = "grpc+tcp://[::1]:0";
  EXPECT_EQ(config.AdvertisedEndpoint(4321), "grpc://[::1]:4321");
  config.index = "redis://127.0.0.1:6379";  // a loopback address is fine for a local cluster
  EXPECT_TRUE(config.Validate().ok()) << config.Validate();
}

}  // namespace
}  // namespace quiver
