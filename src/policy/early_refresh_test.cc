// XFetch decisions: exact edges, and the refresh frequency over many seeded draws.
#include "policy/early_refresh.h"

#include <gtest/gtest.h>

#include <cmath>

namespace quiver {
namespace {

constexpr int64_t kExpiry = 1'000'000;

// The share of `n` seeded draws that refresh at `now` for a result costing `cost_ms`.
double RefreshRate(int64_t now, int64_t cost_ms, double beta, int n = 20000) {
  auto random = SeededUnitRandom(42);
  int refreshed = 0;
  for (int i = 0; i < n; ++i) {
    refreshed += ShouldRefreshEarly(now, kExpiry, cost_ms, beta, random());
  }
  return static_cast<double>(refreshed) / n;
}

TEST(EarlyRefreshTest, EdgesAreExact) {
  // u = 1: ln(u) = 0, so nobody looks ahead; only an expired result refreshes.
  EXPECT_FALSE(ShouldRefreshEarly(kExpiry - 1, kExpiry, 100, 1.0, 1.0));
  EXPECT_TRUE(ShouldRefreshEarly(kExpiry, kExpiry, 100, 1.0, 1.0));
  // u = e^-1: looks exactly one cost * beta ahead.
  const double u = std::exp(-1.0);
  EXPECT_TRUE(ShouldRefreshEarly(kExpiry - 100, kExpiry, 100, 1.0, u));
  EXPECT_FALSE(ShouldRefreshEarly(kExpiry - 101, kExpiry, 100, 1.0, u));
  EXPECT_TRUE(ShouldRefreshEarly(kExpiry - 200, kExpiry, 100, 2.0, u));
  // A zero draw looks far ahead, but stays finite.
  EXPECT_TRUE(ShouldRefreshEarly(kExpiry - 10'000, kExpiry, 100, 1.0, 0.0));
}

TEST(EarlyRefreshTest, OffWhenBetaOrCostIsZeroOrNothingExpires) {
  const double tiny = 1e-300;
  EXPECT_FALSE(ShouldRefreshEarly(kExpiry - 1, kExpiry, 100, 0.0, tiny));
  EXPECT_FALSE(ShouldRefreshEarly(kExpiry - 1, kExpiry, 0, 1.0, tiny));
  EXPECT_FALSE(ShouldRefreshEarly(kExpiry - 1, 0, 100, 1.0, tiny));
  EXPECT_EQ(EarlyRefreshProbability(kExpiry - 1, kExpiry, 100, 0.0), 0.0);
}

TEST(EarlyRefreshTest, RateGrowsAsExpiryNears) {
  const int64_t cost = 200;
  double previous = -1;
  for (int64_t left : {2000, 1000, 500, 200, 50, 0}) {
    const double rate = RefreshRate(kExpiry - left, cost, 1.0);
    EXPECT_GT(rate, previous) << left << " ms before expiry";
    // Matches exp(-left / (cost * beta)) within sampling error (20000 draws: sd < 0.0036).
    EXPECT_NEAR(rate, EarlyRefreshProbability(kExpiry - left, kExpiry, cost, 1.0), 0.015)
        << left << " ms before expiry";
    previous = rate;
  }
  EXPECT_LT(RefreshRate(kExpiry - 5000, cost, 1.0), 0.001) << "far from expiry: ~e^-25";
  EXPECT_EQ(RefreshRate(kExpiry, cost, 1.0), 1.0);
}

TEST(EarlyRefreshTest, RateGrowsWithCostAndBeta) {
  const int64_t now = kExpiry - 500;
  double previous = -1;
  for (int64_t cost : {10, 100, 250, 500, 2000}) {
    const double rate = RefreshRate(now, cost, 1.0);
    EXPECT_GT(rate, previous) << "cost " << cost << " ms";
    previous = rate;
  }
  EXPECT_LT(RefreshRate(now, 100, 0.5), RefreshRate(now, 100, 1.0));
  EXPECT_LT(RefreshRate(now, 100, 1.0), RefreshRate(now, 100, 3.0));
}

}  // namespace
}  // namespace quiver
