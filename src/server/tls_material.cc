#include "server/tls_material.h"

#include <fstream>
#include <sstream>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace quiver {

namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

// Session ids resumed on a context swapped in must belong to the same application.
constexpr unsigned char kSessionContext[] = "quiver";

// The reason OpenSSL queued last (the queue is cleared).
std::string OpenSslReason() {
  unsigned long code = 0;
  unsigned long last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return "no reason given";
  const char* reason = ERR_reason_error_string(last);
  return reason != nullptr ? reason : "unknown error";
}

arrow::Result<std::string> ReadPem(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
    return arrow::Status::Invalid(field, " '", path, "' is not a readable PEM file");
  }
  return text.str();
}

BioPtr ReadOnlyBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
}

// Every certificate in `pem`, in order; at least one.
arrow::Result<std::vector<X509Ptr>> ParseCertificates(const std::string& pem,
                                                      const std::string& field,
                                                      const std::string& path) {
  auto bio = ReadOnlyBio(pem);
  std::vector<X509Ptr> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert, &X509_free);
  }
  // Reading stops at the end of the text with a "no start line" error; any other is real.
  const unsigned long stop = ERR_peek_last_error();
  const bool clean_end = ERR_GET_LIB(stop) == ERR_LIB_PEM &&
                         ERR_GET_REASON(stop) == PEM_R_NO_START_LINE;
  if (certs.empty() || (stop != 0 && !clean_end)) {
    return arrow::Status::Invalid(field, " '", path, "' holds no valid certificate (",
                                  OpenSslReason(), ")");
  }
  ERR_clear_error();
  return certs;
}

int NoPassword(char*, int, int, void*) { return 0; }  // never prompt on the terminal

// What every server context of Quiver's has: TLS 1.2 or later, no compression, one session
// id context (so a session resumes on a context swapped in).
void SetServerDefaults(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
}

arrow::Status Check(bool ok, const std::string& what) {
  if (ok) return arrow::Status::OK();
  return arrow::Status::Invalid(what, " (", OpenSslReason(), ")");
}

}  // namespace

arrow::Result<std::shared_ptr<const TlsMaterial>> TlsMaterial::Load(const TlsFiles& files) {
  std::shared_ptr<TlsMaterial> m(new TlsMaterial());
  ARROW_ASSIGN_OR_RAISE(m->cert_pem_, ReadPem(files.cert, files.cert_field));
  ARROW_ASSIGN_OR_RAISE(m->key_pem_, ReadPem(files.key, files.key_field));
  if (!files.client_ca.empty()) {
    ARROW_ASSIGN_OR_RAISE(m->ca_pem_, ReadPem(files.client_ca, files.ca_field));
  }
  ERR_clear_error();
  ARROW_ASSIGN_OR_RAISE(auto chain, ParseCertificates(m->cert_pem_, files.cert_field, files.cert));
  auto key_bio = ReadOnlyBio(m->key_pem_);
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, &NoPassword, nullptr),
             &EVP_PKEY_free);
  ARROW_RETURN_NOT_OK(Check(key != nullptr, files.key_field + " '" + files.key +
                                                "' holds no private key (an encrypted key "
                                                "is not supported)"));
  std::vector<X509Ptr> cas;
  if (!files.client_ca.empty()) {
    ARROW_ASSIGN_OR_RAISE(cas, ParseCertificates(m->ca_pem_, files.ca_field, files.client_ca));
  }

  m->ctx_ = SSL_CTX_new(TLS_server_method());
  SSL_CTX* ctx = m->ctx_;
  ARROW_RETURN_NOT_OK(Check(ctx != nullptr, "cannot create a TLS context"));
  SetServerDefaults(ctx);
  ARROW_RETURN_NOT_OK(Check(SSL_CTX_use_certificate(ctx, chain[0].get()) == 1,
                            files.cert_field + " '" + files.cert + "' cannot be served"));
  for (size_t i = 1; i < chain.size(); ++i) {
    ARROW_RETURN_NOT_OK(Check(SSL_CTX_add1_chain_cert(ctx, chain[i].get()) == 1,
                              files.cert_field + " '" + files.cert + "' has a bad chain"));
  }
  ARROW_RETURN_NOT_OK(Check(SSL_CTX_use_PrivateKey(ctx, key.get()) == 1 &&
                                SSL_CTX_check_private_key(ctx) == 1,
                            files.key_field + " '" + files.key + "' is not the key of " +
                                files.cert_field + " '" + files.cert + "'"));
  if (!cas.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (const auto& ca : cas) {
      ARROW_RETURN_NOT_OK(Check(X509_STORE_add_cert(store, ca.get()) == 1 &&
                                    SSL_CTX_add_client_CA(ctx, ca.get()) == 1,
                                files.ca_field + " '" + files.client_ca + "' cannot be used"));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return m;
}

TlsMaterial::~TlsMaterial() { SSL_CTX_free(ctx_); }

bool TlsMaterial::SameAs(const TlsMaterial& other) const {
  return cert_pem_ == other.cert_pem_ && key_pem_ == other.key_pem_ && ca_pem_ == other.ca_pem_;
}

namespace {

// Every handshake serves the material in force when its ClientHello arrives: the connection
// moves to that material's context (certificate, key, client CA store and names).
int SwitchToCurrent(SSL* ssl, int* alert, void* arg) {
  auto material = static_cast<ReloadableTlsContext*>(arg)->current();
  SSL_CTX* ctx = material->server_context();
  if (SSL_set_SSL_CTX(ssl, ctx) != ctx) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  // The verify mode was copied from the listener's context when the connection began.
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), nullptr);
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace

void ReloadableTlsContext::Install(SSL_CTX* ctx) {
  SetServerDefaults(ctx);
  SSL_CTX_set_client_hello_cb(ctx, &SwitchToCurrent, this);
}

void ReloadableTlsContext::Replace(std::shared_ptr<const TlsMaterial> material) {
  std::lock_guard<std::mutex> lock(mutex_);
  material_ = std::move(material);
}

std::shared_ptr<const TlsMaterial> ReloadableTlsContext::current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return material_;
}

}  // namespace quiver
