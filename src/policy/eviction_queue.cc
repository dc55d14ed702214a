#include "policy/eviction_queue.h"

namespace quiver {

// The tiers' and the simulator's queue, compiled once here.
template class BasicEvictionQueue<NoPayload>;

}  // namespace quiver
