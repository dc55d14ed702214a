#include "policy/early_refresh.h"

#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <random>

namespace quiver {

UnitRandom DefaultUnitRandom() {
  return [] {
    thread_local std::mt19937_64 engine(std::random_device{}());
    // generate_canonical is in [0, 1); 1 - x is in (0, 1], so ln() is finite.
    return 1.0 - std::generate_canonical<double, 53>(engine);
  };
}

UnitRandom SeededUnitRandom(uint64_t seed) {
  struct State {
    std::mutex mutex;
    std::mt19937_64 engine;
  };
  auto state = std::make_shared<State>();
  state->engine.seed(seed);
  return [state] {
    std::lock_guard<std::mutex> lock(state->mutex);
    return 1.0 - std::generate_canonical<double, 53>(state->engine);
  };
}

bool ShouldRefreshEarly(int64_t now_ms, int64_t expires_ms, int64_t cost_ms, double beta,
                        double u) {
  if (!(beta > 0) || cost_ms <= 0 || expires_ms == 0) return false;
  if (now_ms >= expires_ms) return true;
  if (!(u > 0)) u = std::numeric_limits<double>::min();
  if (u > 1) u = 1;
  // -ln(u) >= 0: how many "recompute costs" ahead of expiry this reader looks.
  const double ahead_ms = static_cast<double>(cost_ms) * beta * -std::log(u);
  return static_cast<double>(now_ms) + ahead_ms >= static_cast<double>(expires_ms);
}

double EarlyRefreshProbability(int64_t now_ms, int64_t expires_ms, int64_t cost_ms,
                               double beta) {
  if (!(beta > 0) || cost_ms <= 0 || expires_ms == 0) return 0;
  if (now_ms >= expires_ms) return 1;
  return std::exp(-static_cast<double>(expires_ms - now_ms) /
                  (static_cast<double>(cost_ms) * beta));
}

}  // namespace quiver
