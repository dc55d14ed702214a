// One suite run against every policy (typed), then what only the cost-aware score promises.
#include "policy/eviction_policy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "policy/eviction_queue.h"

namespace quiver {
namespace {

template <typename P>
std::shared_ptr<const EvictionPolicy> Make();
template <>
std::shared_ptr<const EvictionPolicy> Make<LruPolicy>() {
  return std::make_shared<LruPolicy>();
}
template <>
std::shared_ptr<const EvictionPolicy> Make<CostAwarePolicy>() {
  return std::make_shared<CostAwarePolicy>(1000);
}

template <typename P>
class EveryPolicy : public ::testing::Test {
 protected:
  EvictionQueue queue_{Make<P>()};
};
using Policies = ::testing::Types<LruPolicy, CostAwarePolicy>;
TYPED_TEST_SUITE(EveryPolicy, Policies);

TYPED_TEST(EveryPolicy, RecentlyUsedOutlivesUntouchedOfEqualSizeAndCost) {
  auto& q = this->queue_;
  q.Insert("a", 100, 1.0);
  q.Insert("b", 100, 1.0);
  q.Insert("c", 100, 1.0);
  q.Touch("a");
  EXPECT_EQ(q.InOrder(), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(q.Lowest(nullptr), "b");
  EXPECT_EQ(q.Lowest([](const std::string& k) { return k == "b"; }), "c");
}

TYPED_TEST(EveryPolicy, BytesAndCountsTrackInsertsReplacesAndRemoves) {
  auto& q = this->queue_;
  q.Insert("a", 100, 1);
  q.Insert("b", 50, 1);
  EXPECT_EQ(q.total_bytes(), 150);
  q.Insert("a", 30, 1);  // replace
  EXPECT_EQ(q.total_bytes(), 80);
  EXPECT_EQ(q.size(), 2u);
  q.Remove("b");
  q.Remove("missing");
  EXPECT_EQ(q.total_bytes(), 30);
  EXPECT_FALSE(q.Touch("b"));
  EXPECT_EQ(q.InOrder(), std::vector<std::string>{"a"});
}

TYPED_TEST(EveryPolicy, PickVictimsFreesJustEnoughAndRespectsProtection) {
  auto& q = this->queue_;
  for (auto k : {"a", "b", "c", "d"}) q.Insert(k, 100, 1);
  bool fits = false;
  // 400 stored + 150 incoming in a 400 budget: two lowest must go.
  auto victims = q.PickVictims(150, 1, 400, 0, nullptr, &fits);
  EXPECT_TRUE(fits);
  EXPECT_EQ(victims, (std::vector<std::string>{"a", "b"}));
  victims = q.PickVictims(150, 1, 400, 0, [](const std::string& k) { return k == "a"; }, &fits);
  EXPECT_EQ(victims, (std::vector<std::string>{"b", "c"}));
  // Entry-count budget: 4 entries, max 4, one incoming -> one victim.
  victims = q.PickVictims(0, 1, 1 << 30, 4, nullptr, &fits);
  EXPECT_EQ(victims, std::vector<std::string>{"a"});
  // A new version of an existing key adds no entry.
  victims = q.PickVictims(0, 0, 1 << 30, 4, nullptr, &fits);
  EXPECT_TRUE(victims.empty() && fits);
  // Everything protected: it cannot fit.
  victims = q.PickVictims(150, 1, 400, 0, [](const std::string&) { return true; }, &fits);
  EXPECT_FALSE(fits);
  EXPECT_TRUE(victims.empty());
  EXPECT_EQ(q.total_bytes(), 400) << "PickVictims must not remove anything";
}

TYPED_TEST(EveryPolicy, RestoredHistoryGivesTheOrderItWasSavedIn) {
  // Save a queue's histories and tick, rebuild it in another insertion order (as a
  // restart does), restore: the order is the saved one, and later accesses score as
  // they would have without the restart.
  auto& q = this->queue_;
  for (auto k : {"a", "b", "c"}) q.Insert(k, 100, 1.0);
  for (int i = 0; i < 3; ++i) q.Touch("a");
  q.Touch("b");
  const auto saved_order = q.InOrder();
  ASSERT_EQ(saved_order.front(), "c") << "never touched since its insert";

  EvictionQueue restarted{Make<TypeParam>()};
  for (auto k : {"b", "c", "a"}) restarted.Insert(k, 100, 1.0);
  ASSERT_NE(restarted.InOrder(), saved_order);
  restarted.AdvanceTick(q.tick());
  for (auto k : {"a", "b", "c"}) ASSERT_TRUE(restarted.RestoreHistory(k, *q.Find(k)));
  EXPECT_FALSE(restarted.RestoreHistory("gone", *q.Find("a")));
  EXPECT_EQ(restarted.InOrder(), saved_order);
  EXPECT_EQ(restarted.Find("a")->accesses, 4u);
  EXPECT_EQ(restarted.tick(), q.tick());
  restarted.Touch("c");
  EXPECT_EQ(restarted.tick(), q.tick() + 1) << "the access counter continues";
  q.Touch("c");
  EXPECT_EQ(restarted.Score("c"), q.Score("c")) << "as if there had been no restart";
}

TEST(LruPolicy, OrderIsRecencyRegardlessOfCostAndSize) {
  EvictionQueue q(std::make_shared<LruPolicy>());
  q.Insert("expensive", 10, 1000);
  q.Insert("cheap", 10'000'000, 0.001);
  EXPECT_EQ(q.Lowest(nullptr), "expensive");
}

TEST(CostAwarePolicy, MatchesTheFormulaOnAHandComputedTrace) {
  const double half_life = 1000;
  EvictionQueue q(std::make_shared<CostAwarePolicy>(half_life));
  q.Insert("A", 100, 1.0);    // t=1
  q.Insert("B", 100, 10.0);   // t=2
  q.Insert("C", 1000, 1.0);   // t=3
  q.Touch("A");               // t=4
  q.Touch("A");               // t=5
  const double m = 1 + std::log(2.0) / half_life;
  const double a = (std::pow(m, 1) + std::pow(m, 4) + std::pow(m, 5)) * 1.0 / 100;
  const double b = std::pow(m, 2) * 10.0 / 100;
  const double c = std::pow(m, 3) * 1.0 / 1000;
  EXPECT_NEAR(std::exp(q.Score("A")), a, a * 1e-12);
  EXPECT_NEAR(std::exp(q.Score("B")), b, b * 1e-12);
  EXPECT_NEAR(std::exp(q.Score("C")), c, c * 1e-12);
  EXPECT_EQ(q.InOrder(), (std::vector<std::string>{"C", "A", "B"}));
  EXPECT_EQ(q.Find("A")->accesses, 3u);
}

TEST(CostAwarePolicy, HalfLifeHalvesTheWeightOfOldAccesses) {
  CostAwarePolicy p(10);
  PolicyEntry old_entry{100, 1.0}, new_entry{100, 1.0};
  p.Touch(&old_entry, 1);
  p.Touch(&new_entry, 11);  // ten accesses later
  // m^10 = (1 + ln2/10)^10 ~= 2 (exactly 2 only in the limit); so ~half.
  double ratio = std::exp(p.Score(old_entry) - p.Score(new_entry));
  EXPECT_NEAR(ratio, 0.5, 0.02);
}

TEST(CostAwarePolicy, NoOverflowAfterTenMillionAccesses) {
  EvictionQueue q(std::make_shared<CostAwarePolicy>(1000));
  q.Insert("hot", 1000, 1.0);
  q.Insert("cold", 1000, 1.0);
  for (int i = 0; i < 10'000'000; ++i) q.Touch("hot");
  double hot = q.Score("hot"), cold = q.Score("cold");
  EXPECT_TRUE(std::isfinite(hot)) << hot;
  EXPECT_TRUE(std::isfinite(cold));
  EXPECT_GT(hot, cold);
  // The naive weight m^t would be e^6931 here: far past DBL_MAX (~e^709).
  EXPECT_GT(q.tick() * std::log1p(std::log(2.0) / 1000), 709.0);
  // A fresh insert now outranks the long-untouched cold entry of equal size and cost.
  q.Insert("new", 1000, 1.0);
  EXPECT_GT(q.Score("new"), cold);
  EXPECT_EQ(q.Lowest(nullptr), "cold");
}

TEST(CostAwarePolicy, CheapLargeEntriesLeaveBeforeExpensiveSmallOnes) {
  EvictionQueue q(std::make_shared<CostAwarePolicy>(1000));
  q.Insert("big-cheap", 1 << 30, 0.5);
  q.Insert("small-expensive", 1 << 20, 30);
  EXPECT_EQ(q.Lowest(nullptr), "big-cheap");
}

TEST(MakeEvictionPolicy, ByName) {
  EXPECT_STREQ((*MakeEvictionPolicy("cost", 1000))->name(), "cost");
  EXPECT_STREQ((*MakeEvictionPolicy("lru", 1000))->name(), "lru");
  EXPECT_FALSE(MakeEvictionPolicy("fifo", 1000).ok());
  EXPECT_FALSE(MakeEvictionPolicy("cost", 0).ok());
}

}  // namespace
}  // namespace quiver
