// The Lua scripts of the Redis index (redis_scripts.cc; layout in
// docs/design/redis_schema.md).
//
// Thread-safety: immutable after construction.
#pragma once

#include "redis/redis_client.h"

namespace quiver {

struct RedisScripts {
  static const RedisScripts& Get();

  redis::Script get;
  redis::Script publish;
  redis::Script remove;
  redis::Script trim;
  redis::Script bump_and_collect;
  redis::Script touch;
  redis::Script describe;
  redis::Script lease_acquire;
  redis::Script lease_keep;
  redis::Script restore;
  redis::Script mark_rebuilt;

 private:
  RedisScripts();
};

}  // namespace quiver
