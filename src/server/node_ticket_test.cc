#include "server/node_ticket.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace quiver {
namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";
const NodeJoin kJoin{std::string(64, 'a'), 42, "n1"};

// `ticket` with its JSON field `field` replaced by `value` (the MAC left as it was).
std::string Tampered(const std::string& ticket, const char* field, const nlohmann::json& value) {
  auto j = nlohmann::json::parse(ticket.substr(std::string(kNodeTicketPrefix).size()));
  j[field] = value;
  return kNodeTicketPrefix + j.dump();
}

void ExpectRefused(const arrow::Result<NodeJoin>& verified, const char* what) {
  ASSERT_FALSE(verified.ok()) << what;
  EXPECT_TRUE(IsNodeTicketRefused(verified.status())) << what << ": " << verified.status();
  EXPECT_NE(verified.status().message().find("node ticket refused"), std::string::npos);
}

TEST(NodeTicket, RoundTrip) {
  const std::string ticket = MakeNodeTicket(kJoin, kSecret);
  EXPECT_TRUE(IsNodeTicket(ticket));
  auto verified = VerifyNodeTicket(ticket, kSecret);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->key, kJoin.key);
  EXPECT_EQ(verified->token, kJoin.token);
  EXPECT_EQ(verified->from, kJoin.from);
}

TEST(NodeTicket, TamperedFieldsAreRefused) {
  const std::string ticket = MakeNodeTicket(kJoin, kSecret);
  ExpectRefused(VerifyNodeTicket(Tampered(ticket, "join", std::string(64, 'b')), kSecret),
                "key");
  ExpectRefused(VerifyNodeTicket(Tampered(ticket, "token", 43), kSecret), "token");
  ExpectRefused(VerifyNodeTicket(Tampered(ticket, "from", "n2"), kSecret), "sender");
  ExpectRefused(VerifyNodeTicket(Tampered(ticket, "mac", std::string(64, '0')), kSecret),
                "mac");
  ExpectRefused(VerifyNodeTicket(Tampered(ticket, "mac", ""), kSecret), "empty mac");
}

TEST(NodeTicket, OtherOrEmptySecretsAreRefused) {
  ExpectRefused(VerifyNodeTicket(MakeNodeTicket(kJoin, kSecret), kSecret + "0"),
                "another secret");
  ExpectRefused(VerifyNodeTicket(MakeNodeTicket(kJoin, kSecret), ""), "no secret here");
  // A ticket signed without a secret verifies nowhere, not even where the secret is empty.
  ExpectRefused(VerifyNodeTicket(MakeNodeTicket(kJoin, ""), ""), "empty secret");
  ExpectRefused(VerifyNodeTicket(MakeNodeTicket(kJoin, ""), kSecret), "signed with none");
}

TEST(NodeTicket, MalformedIsInvalidNotRefused) {
  const std::string prefix = kNodeTicketPrefix;
  for (const std::string& bad :
       {std::string("s/o"), prefix, prefix + "{broken", prefix + "[1]",
        prefix + R"({"join": "k", "token": -1, "from": "n", "mac": "00"})",
        prefix + R"({"join": "k", "token": 1, "from": "n"})"}) {
    auto verified = VerifyNodeTicket(bad, kSecret);
    ASSERT_FALSE(verified.ok()) << bad;
    EXPECT_TRUE(verified.status().IsInvalid()) << bad << ": " << verified.status();
    EXPECT_FALSE(IsNodeTicketRefused(verified.status())) << bad;
  }
  EXPECT_FALSE(IsNodeTicketRefused(arrow::Status::OK()));
}

}  // namespace
}  // namespace quiver
