// Early refresh: XFetch, the probabilistic early expiration of Vattani, Chierichetti and
// Lowenstein ("Optimal Probabilistic Cache Stampede Prevention", VLDB 2015).
//
// A cached result that took `delta` to compute and expires at `expiry` is refreshed by a
// reader at time `now` when
//
//     now - delta * beta * ln(u) >= expiry,      u uniform in (0, 1]
//
// i.e. with probability exp(-(expiry - now) / (delta * beta)): almost never while expiry
// is far, more and more often as it nears, and sooner for results that are expensive to
// recompute. One reader, usually, refreshes before anyone sees a miss. beta > 1 favours
// earlier refreshes, beta < 1 later ones; 0 turns early refresh off.
//
// Pure code: no clock, no I/O; the random draw is passed in (UnitRandom) so tests can fix it.
//
// Thread-safety: ShouldRefreshEarly is a pure function. DefaultUnitRandom() returns a
// function that is safe to call from any thread (one generator per thread).
#pragma once

#include <cstdint>
#include <functional>

namespace quiver {

/// A source of uniform random numbers in (0, 1].
using UnitRandom = std::function<double()>;

/// \brief Return a thread-safe UnitRandom seeded from std::random_device.
UnitRandom DefaultUnitRandom();

/// \brief Return a UnitRandom with a fixed seed (tests, benchmarks). Safe to call from any
/// thread (draws are serialized).
UnitRandom SeededUnitRandom(uint64_t seed);

/// \brief Decide whether a read at `now_ms` refreshes a result expiring at `expires_ms`
/// that took `cost_ms` to compute. `u` is a uniform draw in (0, 1]; a `u` <= 0 counts as
/// the smallest positive double. False when beta <= 0, cost_ms <= 0 or expires_ms == 0
/// (never expires).
bool ShouldRefreshEarly(int64_t now_ms, int64_t expires_ms, int64_t cost_ms, double beta,
                        double u);

/// \brief The probability ShouldRefreshEarly is true at `now_ms` (for documentation and
/// tests): exp(-(expires_ms - now_ms) / (cost_ms * beta)), 1 once expired.
double EarlyRefreshProbability(int64_t now_ms, int64_t expires_ms, int64_t cost_ms,
                               double beta);

}  // namespace quiver
