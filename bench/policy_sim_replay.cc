#include "policy_sim_replay.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "policy/eviction_policy.h"
#include "policy/eviction_queue.h"

namespace quiver::policy_sim {

std::string Config::Label() const {
  if (policy == "lru") return "LRU";
  if (policy == "oracle") return "static oracle (ref.)";
  return half_life == kServerHalfLife ? fmt::format("cost, hl={:.0f} (server)", half_life)
                                      : fmt::format("cost, hl={:.0f}", half_life);
}

Result Replay(const Workload& w, const Trace& t, const Config& c) {
  std::shared_ptr<const quiver::EvictionPolicy> policy;
  if (c.policy == "lru") {
    policy = std::make_shared<quiver::LruPolicy>();
  } else {
    policy = std::make_shared<quiver::CostAwarePolicy>(c.half_life);
  }
  quiver::EvictionQueue queue(policy);
  Result r;
  r.config = c;
  std::vector<uint64_t> idle_at_eviction;
  double sum_entries = 0, sum_cold_bytes = 0;
  int64_t cold_bytes = 0;
  auto start = std::chrono::steady_clock::now();
  for (uint32_t id : t.requests) {
    const Object& o = w.objects[id];
    const std::string& key = w.keys[id];
    sum_entries += static_cast<double>(queue.size());
    sum_cold_bytes += static_cast<double>(cold_bytes);
    ++r.requests;
    r.bytes_requested += o.bytes;
    r.cost_total += o.cost_s;
    if (queue.Touch(key)) {
      ++r.hits;
      r.bytes_hit += o.bytes;
      r.cost_saved += o.cost_s;
      continue;
    }
    // Miss: recomputed, then offered to the cache as the engine does (Budget::Reserve).
    if (o.bytes > c.budget_bytes) {
      ++r.not_admitted;
      continue;
    }
    bool fits = false;
    // As Budget::Reserve for a key that is not cached: room for its bytes and one more
    // entry, no entry limit, the key itself protected.
    auto victims = queue.PickVictims(
        o.bytes, /*incoming_entries=*/1, c.budget_bytes, /*max_entries=*/0,
        [&key](const std::string& k) { return k == key; }, &fits);
    if (!fits) {
      ++r.not_admitted;
      continue;
    }
    for (const auto& v : victims) {
      const quiver::PolicyEntry* e = queue.Find(v);
      idle_at_eviction.push_back(queue.tick() - e->last_tick);
      if (v.starts_with("cold/")) cold_bytes -= e->bytes;
      queue.Remove(v);
    }
    r.evictions += static_cast<int64_t>(victims.size());
    queue.Insert(key, o.bytes, o.cost_s);
    if (static_cast<int64_t>(id) >= w.n_hot) cold_bytes += o.bytes;
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (r.requests > 0) {
    r.avg_entries = sum_entries / r.requests;
    r.avg_scan_share = sum_cold_bytes / r.requests / static_cast<double>(c.budget_bytes);
  }
  if (!idle_at_eviction.empty()) {
    auto quantile = [&](double q) {
      auto it = idle_at_eviction.begin() +
                static_cast<ptrdiff_t>(q * static_cast<double>(idle_at_eviction.size() - 1));
      std::nth_element(idle_at_eviction.begin(), it, idle_at_eviction.end());
      return static_cast<int64_t>(*it);
    };
    r.idle_at_eviction_p50 = quantile(0.5);
    r.idle_at_eviction_p90 = quantile(0.9);
  }
  r.final_entries = static_cast<int64_t>(queue.size());
  r.final_bytes = queue.total_bytes();
  return r;
}

Result StaticOracle(const Workload& w, const Trace& t, const Config& c) {
  auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> count(w.objects.size(), 0);
  for (uint32_t id : t.requests) ++count[id];
  std::vector<uint32_t> ids;
  for (uint32_t id = 0; id < count.size(); ++id) {
    if (count[id] > 1) ids.push_back(id);
  }
  auto value = [&](uint32_t id) {
    return static_cast<double>(count[id] - 1) * w.objects[id].cost_s / w.objects[id].bytes;
  };
  std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
    double va = value(a), vb = value(b);
    return va != vb ? va > vb : a < b;
  });
  std::vector<char> kept(w.objects.size(), 0);
  int64_t used = 0;
  Result r;
  r.config = c;
  for (uint32_t id : ids) {
    if (used + w.objects[id].bytes <= c.budget_bytes) {
      kept[id] = 1;
      used += w.objects[id].bytes;
      ++r.final_entries;
    }
  }
  r.final_bytes = used;
  std::vector<char> seen(w.objects.size(), 0);
  for (uint32_t id : t.requests) {
    const Object& o = w.objects[id];
    ++r.requests;
    r.bytes_requested += o.bytes;
    r.cost_total += o.cost_s;
    if (kept[id] && seen[id]) {
      ++r.hits;
      r.bytes_hit += o.bytes;
      r.cost_saved += o.cost_s;
    }
    seen[id] = 1;
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace quiver::policy_sim
