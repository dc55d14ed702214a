// FlightPeerClient against real Flight servers on loopback: what a follower is told when the
// filling node cannot be reached, and when it answers but the fill cannot be joined.
#include "server/flight_peer_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

#include "cache/engine_test_util.h"
#include "server/flight_service.h"
#include "server/node_ticket.h"

namespace quiver {
namespace {

namespace flight = arrow::flight;

const std::string kKey(64, 'a');

// A TCP socket on loopback that accepts connections (the kernel does, into the backlog) but
// never says anything: a paused node.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), length), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length), 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  std::string endpoint() const { return "grpc://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class FlightPeerClientTest : public EngineTest {
 protected:
  void SetUp() override {
    Open();
    ASSERT_OK_AND_ASSIGN(auto location, flight::Location::ForGrpcTcp("127.0.0.1", 0));
    ASSERT_OK(service_.Init(flight::FlightServerOptions(location)));
    service_.Start(engine_.get());
    endpoint_ = "grpc://127.0.0.1:" + std::to_string(service_.port());
  }
  void TearDown() override { ASSERT_OK(service_.Shutdown()); }

  QuiverFlightService service_;
  std::string endpoint_;
};

TEST_F(FlightPeerClientTest, AFillTheNodeDoesNotRunIsNotUnreachable) {
  FlightPeerClient peers(engine_->options().index, "n2");
  auto joined = peers.JoinFill(endpoint_, kKey, 7);
  ASSERT_FALSE(joined.ok());
  EXPECT_FALSE(IsPeerUnreachable(joined.status())) << joined.status();
  EXPECT_TRUE(joined.status().IsKeyError()) << joined.status();
  EXPECT_NE(joined.status().message().find("runs no fill"), std::string::npos);
}

TEST_F(FlightPeerClientTest, ATicketRefusedEvenReSignedMeansTheNodeCannotBeStreamedFrom) {
  // Another cache's index: another secret (read again after the refusal; still another).
  // The follower cannot stream from that node, so it waits for the result: unreachable.
  FlightPeerClient peers(std::make_shared<EmbeddedIndex>(), "intruder");
  auto joined = peers.JoinFill(endpoint_, kKey, 7);
  ASSERT_FALSE(joined.ok());
  EXPECT_TRUE(IsPeerUnreachable(joined.status())) << joined.status();
  EXPECT_NE(joined.status().message().find("node ticket refused"), std::string::npos)
      << joined.status();
}

TEST_F(FlightPeerClientTest, ANodeThatIsStartingIsUnreachable) {
  QuiverFlightService starting;  // listening, not started: UNAVAILABLE
  ASSERT_OK_AND_ASSIGN(auto location, flight::Location::ForGrpcTcp("127.0.0.1", 0));
  ASSERT_OK(starting.Init(flight::FlightServerOptions(location)));
  FlightPeerClient peers(engine_->options().index, "n2");
  auto joined =
      peers.JoinFill("grpc://127.0.0.1:" + std::to_string(starting.port()), kKey, 7);
  ASSERT_FALSE(joined.ok());
  EXPECT_TRUE(IsPeerUnreachable(joined.status())) << joined.status();
  ASSERT_OK(starting.Shutdown());
}

TEST_F(FlightPeerClientTest, NobodyListeningIsUnreachable) {
  std::string endpoint;
  {
    SilentListener closed;  // a port that was free a moment ago, closed again
    endpoint = closed.endpoint();
  }
  FlightPeerClient peers(engine_->options().index, "n2");
  auto joined = peers.JoinFill(endpoint, kKey, 7);
  ASSERT_FALSE(joined.ok());
  EXPECT_TRUE(IsPeerUnreachable(joined.status())) << joined.status();
}

TEST_F(FlightPeerClientTest, ASilentNodeIsUnreachableWithinTheProbeTimeout) {
  SilentListener paused;
  FlightPeerClient peers(engine_->options().index, "n2", std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  auto joined = peers.JoinFill(paused.endpoint(), kKey, 7);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(joined.ok());
  EXPECT_TRUE(IsPeerUnreachable(joined.status())) << joined.status();
  EXPECT_LT(waited, std::chrono::seconds(5));
}

TEST_F(FlightPeerClientTest, AMalformedEndpointIsNotUnreachable) {
  FlightPeerClient peers(engine_->options().index, "n2");
  auto joined = peers.JoinFill("not an endpoint", kKey, 7);
  ASSERT_FALSE(joined.ok());
  EXPECT_FALSE(IsPeerUnreachable(joined.status())) << joined.status();
}

}  // namespace
}  // namespace quiver
