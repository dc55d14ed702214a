// TlsMaterial: the certificate chain, private key and client CA of one TLS port, read from
// their PEM files and checked together with OpenSSL: every certificate parses, the key parses
// and matches the certificate, the CA bundle parses. A bad file is refused with the setting
// and path that name it -- at start, and at a SIGHUP reload, where the material already in
// force stays (docs/security.md, "Rotating certificates").
//
// HTTP serves it through a ReloadableTlsContext; Flight takes its PEM texts (Arrow Flight's
// gRPC listener reads them once, so the Flight port is re-opened to reload, see
// cli/flight_port.h).
//
// Thread-safety: a TlsMaterial is immutable; ReloadableTlsContext may be swapped while
// handshakes run.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <arrow/result.h>

typedef struct ssl_ctx_st SSL_CTX;

namespace quiver {

/// \brief Where a port's TLS files are, and how the settings are named in errors.
/// What reading a server's TLS files again did.
enum class TlsReload {
  kNoTls,      ///< the server does not use TLS: nothing to read
  kUnchanged,  ///< the files hold what is in force: nothing re-opened
  kReloaded,   ///< the new files are in force
};

struct TlsFiles {
  std::string cert;       // PEM certificate chain, the leaf first
  std::string key;        // PEM private key of `cert` (not encrypted)
  std::string client_ca;  // PEM CA bundle; empty: client certificates are not asked for
  std::string cert_field = "tls.cert (--tls-cert)";
  std::string key_field = "tls.key (--tls-key)";
  std::string ca_field = "tls.client_ca (--tls-client-ca)";
};

class TlsMaterial {
 public:
  /// \brief Read and check `files`. Invalid names the setting and the path of a file that is
  /// unreadable, holds no PEM block or no parsable certificate or key, or a key that does not
  /// match the certificate.
  static arrow::Result<std::shared_ptr<const TlsMaterial>> Load(const TlsFiles& files);
  ~TlsMaterial();

  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  /// Empty when no client CA is set.
  const std::string& ca_pem() const { return ca_pem_; }
  /// \brief Whether both hold the same files' contents (a reload of unchanged files is a no-op).
  bool SameAs(const TlsMaterial& other) const;

  /// \brief A server context serving this certificate (TLS 1.2 or later); with a client CA it
  /// requires client certificates signed by it.
  SSL_CTX* server_context() const { return ctx_; }

 private:
  TlsMaterial() = default;
  std::string cert_pem_, key_pem_, ca_pem_;
  SSL_CTX* ctx_ = nullptr;  // owned
};

/// \brief A server SSL_CTX whose certificate, key and client CA can be replaced while it
/// serves: every handshake takes the material in force when its ClientHello arrives, and
/// connections already open keep theirs.
class ReloadableTlsContext {
 public:
  explicit ReloadableTlsContext(std::shared_ptr<const TlsMaterial> material)
      : material_(std::move(material)) {}

  /// \brief Set up `ctx` (the listener's own context) to serve the current material and to
  /// switch each handshake to the material in force. `this` must outlive `ctx`.
  void Install(SSL_CTX* ctx);
  /// \brief Serve `material` from the next handshake on.
  void Replace(std::shared_ptr<const TlsMaterial> material);
  std::shared_ptr<const TlsMaterial> current() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const TlsMaterial> material_;
};

}  // namespace quiver
