#include "server/node_ticket.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <arrow/flight/types.h>
#include <nlohmann/json.hpp>

#include "common/hex.h"

namespace quiver {

namespace {

std::string Mac(const NodeJoin& join, const std::string& secret) {
  const std::string message = join.key + "|" + std::to_string(join.token) + "|" + join.from;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  return HexEncode(digest, length);
}

}  // namespace

bool IsNodeTicket(const std::string& ticket) {
  return ticket.rfind(kNodeTicketPrefix, 0) == 0;
}

std::string MakeNodeTicket(const NodeJoin& join, const std::string& secret) {
  nlohmann::json j = {{"join", join.key},
                      {"token", join.token},
                      {"from", join.from},
                      {"mac", Mac(join, secret)}};
  return kNodeTicketPrefix + j.dump();
}

arrow::Result<NodeJoin> VerifyNodeTicket(const std::string& ticket, const std::string& secret) {
  if (!IsNodeTicket(ticket)) return arrow::Status::Invalid("not a node ticket");
  auto j = nlohmann::json::parse(ticket.substr(std::string(kNodeTicketPrefix).size()), nullptr,
                                 /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("join") || !j["join"].is_string() ||
      !j.contains("token") || !j["token"].is_number_unsigned() || !j.contains("from") ||
      !j["from"].is_string() || !j.contains("mac") || !j["mac"].is_string()) {
    return arrow::Status::Invalid("malformed node ticket");
  }
  NodeJoin join{j["join"].get<std::string>(), j["token"].get<uint64_t>(),
                j["from"].get<std::string>()};
  const std::string expected = Mac(join, secret);
  const std::string given = j["mac"].get<std::string>();
  if (secret.empty() || given.size() != expected.size() ||
      CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0) {
    return arrow::flight::MakeFlightError(
        arrow::flight::FlightStatusCode::Unauthenticated,
        "node ticket refused: its signature does not verify (only nodes of this cache can "
        "make node tickets)");
  }
  return join;
}

bool IsNodeTicketRefused(const arrow::Status& status) {
  auto detail = arrow::flight::FlightStatusDetail::UnwrapStatus(status);
  return detail && detail->code() == arrow::flight::FlightStatusCode::Unauthenticated;
}

}  // namespace quiver
