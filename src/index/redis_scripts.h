// The Lua scripts of the Redis index (redis_scripts.cc; layout in
// docs/design/redis_schema.md), and how values travel to and from them.
//
// Thread-safety: immutable after construction; the functions are pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <arrow/result.h>

#include "index/index.h"
#include "redis/redis_client.h"

namespace quiver {

/// Each script declares whether a run may reach the server twice (redis::Repeat): those
/// whose second run would answer differently or count twice must not.
struct RedisScripts {
  static const RedisScripts& Get();

  redis::Script get;               ///< repeatable: a read
  redis::Script publish;           ///< not: a repeat would refuse its own success
  redis::Script remove;            ///< not: a repeat would return nothing removed
  redis::Script trim;              ///< not: a repeat would return nothing trimmed
  redis::Script bump_and_collect;  ///< repeatable: a second bump only moves the counter on
  redis::Script touch;             ///< not: reads would count twice
  redis::Script describe;          ///< repeatable: a read
  redis::Script lease_acquire;     ///< not: a repeat would find its own lease held
  redis::Script lease_keep;        ///< repeatable: renewing or releasing twice is the same
  redis::Script restore;           ///< not: the access would count twice
  redis::Script mark_rebuilt;      ///< repeatable: raising floors and setting flags

 private:
  RedisScripts();
};

/// \brief A double as the scripts take it: all 17 significant digits (Lua's own conversion
/// keeps 14).
std::string ScriptNumber(double x);

/// The scoring arguments of the scripts that score (eviction_policy.h).
struct ScoringArgs {
  explicit ScoringArgs(const ScoringPolicy& scoring);
  std::string policy;  ///< "lru" or "cost"
  /// ln m, m = 1 + ln 2 / half_life: each access at tick t adds m^t to the weight.
  std::string log_m;
};

/// \brief A decimal integer out of a reply or a counter field. Anything else is an IOError
/// naming `what`: a damaged index, never an exception.
arrow::Result<int64_t> ParseReplyInteger(std::string_view text, std::string_view what);
/// \brief A double out of a reply (a score, a cost), likewise.
arrow::Result<double> ParseReplyDouble(std::string_view text, std::string_view what);

/// \brief A lease's value, "token|owner|endpoint" (lease_acquire; the endpoint never holds
/// '|'), with `ttl_ms` left; std::nullopt if it is not one.
std::optional<LeaseHolder> ParseLeaseValue(const std::string& value, int64_t ttl_ms);

}  // namespace quiver
