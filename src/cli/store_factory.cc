#include "cli/store_factory.h"

#include <cstdlib>
#include <fstream>

#include <spdlog/spdlog.h>

#include "index/entry.h"
#include "storage/encrypted_blob_store.h"
#include "storage/key_file.h"
#include "storage/s3_blob_store.h"

namespace quiver {

namespace {

// A key from `file`, else from environment variable `env`; std::nullopt if neither is set.
arrow::Result<std::optional<EncryptionKey>> LoadKey(const std::string& file, const char* env,
                                                    const char* field) {
  if (!file.empty()) {
    auto key = LoadKeyFile(file);
    if (!key.ok()) return arrow::Status::Invalid(field, ": ", key.status().message());
    return std::optional<EncryptionKey>(std::move(*key));
  }
  const char* value = std::getenv(env);
  if (value == nullptr || *value == '\0') return std::nullopt;
  auto key = KeyFromEnv(env);
  if (!key.ok()) return arrow::Status::Invalid(env, ": ", key.status().message());
  return std::optional<EncryptionKey>(std::move(*key));
}

arrow::Result<std::vector<EncryptionKey>> LoadOldKeys(const std::vector<std::string>& files,
                                                      const char* field) {
  std::vector<EncryptionKey> keys;
  for (const auto& file : files) {
    auto key = LoadKeyFile(file);
    if (!key.ok()) return arrow::Status::Invalid(field, ": ", key.status().message());
    keys.push_back(std::move(*key));
  }
  return keys;
}

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// aws_access_key_id / aws_secret_access_key / aws_session_token of [profile] in an AWS
// shared-credentials file (INI).
arrow::Status ReadCredentialsFile(const std::string& path, const std::string& profile,
                                  S3StoreOptions* o) {
  std::ifstream in(path);
  if (!in) return arrow::Status::IOError("s3.credentials_file '", path, "' cannot be read");
  std::string line, section;
  bool found = false;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      found = found || section == profile;
      continue;
    }
    if (section != profile) continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = Trim(line.substr(0, eq));
    const std::string value = Trim(line.substr(eq + 1));
    if (name == "aws_access_key_id") o->access_key = value;
    else if (name == "aws_secret_access_key") o->secret_key = value;
    else if (name == "aws_session_token") o->session_token = value;
  }
  if (!found || o->access_key.empty() || o->secret_key.empty()) {
    return arrow::Status::Invalid("s3.credentials_file '", path, "' has no profile [", profile,
                                  "] with aws_access_key_id and aws_secret_access_key");
  }
  return arrow::Status::OK();
}

// Config file, else AWS_ACCESS_KEY_ID/..., else the credentials file.
arrow::Status SetCredentials(const S3Config& c, S3StoreOptions* o) {
  if (!c.access_key.empty()) {
    o->access_key = c.access_key;
    o->secret_key = c.secret_key;
    o->session_token = c.session_token;
    return arrow::Status::OK();
  }
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (id && *id && secret && *secret) {
    o->access_key = id;
    o->secret_key = secret;
    if (const char* token = std::getenv("AWS_SESSION_TOKEN")) o->session_token = token;
    return arrow::Status::OK();
  }
  if (!c.credentials_file.empty()) return ReadCredentialsFile(c.credentials_file, c.profile, o);
  return arrow::Status::Invalid(
      "no S3 credentials: set s3.access_key and s3.secret_key in the config file, "
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or s3.credentials_file");
}

// Where and how to connect: region, endpoint, scheme, addressing, CA, timeouts, retries.
void SetConnection(const S3Config& c, S3StoreOptions* o) {
  o->region = c.region;
  o->endpoint_override = c.endpoint;
  o->scheme = c.scheme;
  // S3-compatible servers (an endpoint override) take path-style requests.
  o->path_style = c.path_style || !c.endpoint.empty();
  o->ca_file = c.ca_file;
  o->connect_timeout_s = c.connect_timeout_s;
  o->request_timeout_s = c.request_timeout_s;
  o->max_retries = static_cast<int>(c.max_retries);
}

arrow::Result<std::shared_ptr<BlobStore>> OpenS3(const ServerConfig& config,
                                                 const std::string& node) {
  const std::string path = config.store.substr(5);  // after s3://
  const auto slash = path.find('/');
  S3StoreOptions o;
  o.bucket = path.substr(0, slash);
  if (slash != std::string::npos) o.prefix = path.substr(slash + 1);
  while (!o.prefix.empty() && o.prefix.back() == '/') o.prefix.pop_back();
  const S3Config& c = config.s3;
  SetConnection(c, &o);
  o.readahead_bytes = c.readahead_bytes;
  o.readahead_depth = static_cast<int>(c.readahead_depth);
  ARROW_RETURN_NOT_OK(SetCredentials(c, &o));
  ARROW_ASSIGN_OR_RAISE(auto key, LoadKey(c.sse_c_key_file, "QUIVER_SSE_C_KEY", "s3.sse_c_key_file"));
  if (key) o.sse_c = S3StoreOptions::SseCKey{key->id, key->bytes};
  ARROW_ASSIGN_OR_RAISE(auto old, LoadOldKeys(c.sse_c_old_key_files, "s3.sse_c_old_key_files"));
  for (auto& k : old) o.old_keys.push_back(S3StoreOptions::SseCKey{k.id, k.bytes});
  if (!key && !old.empty()) {
    return arrow::Status::Invalid("s3.sse_c_old_key_files needs a current s3.sse_c_key_file");
  }
  if (!key) spdlog::warn("store {}: no SSE-C key configured; objects are not encrypted with a "
                         "customer key", config.store);
  ARROW_ASSIGN_OR_RAISE(auto store, S3BlobStore::Open(std::move(o), SanitizeNodeId(node)));
  return store;
}

}  // namespace

arrow::Result<NodeStores> OpenStores(const ServerConfig& config, const std::string& node) {
  NodeStores stores;
  ARROW_ASSIGN_OR_RAISE(stores.data_dir, LocalBlobStore::Open(config.data_dir, SanitizeNodeId(node)));
  // A data dir is one node's alone, except a shared data dir (a shared index, no S3).
  const bool shared_dir = config.shared_index() && !config.s3_store();
  ARROW_RETURN_NOT_OK(stores.data_dir->Lock(/*exclusive=*/!shared_dir));
  std::shared_ptr<BlobStore> local = stores.data_dir;
  ARROW_ASSIGN_OR_RAISE(auto key, LoadKey(config.encryption_key_file, "QUIVER_ENCRYPTION_KEY",
                                          "encryption_key_file"));
  ARROW_ASSIGN_OR_RAISE(auto old, LoadOldKeys(config.encryption_old_key_files,
                                              "encryption_old_key_files"));
  if (!key && !old.empty()) {
    return arrow::Status::Invalid("encryption_old_key_files needs a current encryption_key_file");
  }
  if (key) {
    ARROW_ASSIGN_OR_RAISE(local, EncryptedBlobStore::Make(local, *key, std::move(old)));
  }
  if (config.s3_store()) {
    ARROW_ASSIGN_OR_RAISE(stores.store, OpenS3(config, node));
    stores.disk = local;
  } else {
    stores.store = local;
  }
  return stores;
}

arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> OpenArtifactS3(const ServerConfig& config) {
  const S3Config& c = config.s3;
  S3StoreOptions o;
  SetConnection(c, &o);
  if (o.region.empty()) o.region = "us-east-1";  // S3-compatible servers take any
  // Configured credentials, else the AWS SDK's default chain (instance roles included).
  if (!SetCredentials(c, &o).ok()) o.access_key = o.secret_key = o.session_token = "";
  return MakeS3FileSystem(o);
}

}  // namespace quiver
