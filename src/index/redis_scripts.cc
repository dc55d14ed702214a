// The Lua scripts of the Redis index. Each touches only keys passed in KEYS (Dragonfly's
// rule), all of them under the cache's one hash tag, and returns strings where a float would
// otherwise be truncated to an integer. The layout is in docs/design/redis_schema.md.
#include "index/redis_scripts.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace quiver {

namespace {

// Shared helpers, prepended to the scripts that need them.
constexpr const char* kHelpers = R"lua(
local NOT_READY = {err = 'QUIVER_NOTREADY index is being rebuilt'}
local function ready(meta) return redis.call('HGET', meta, 'ready') == '1' end
local function num(v, default)
  if v == false or v == nil then return default end
  return tonumber(v)
end
-- Numbers passed to redis.call must be formatted here: Lua's own conversion keeps 14
-- digits, and counters (floored at rebuild time in microseconds) have 16.
local function fmt(x) return string.format('%.17g', x) end
local function int(x) return string.format('%.0f', x) end
local function split(s)
  local out = {}
  if s == false or s == nil or s == '' then return out end
  for part in string.gmatch(s, '[^,]+') do out[#out + 1] = tonumber(part) end
  return out
end
local function join(list)
  local parts = {}
  for i = 1, #list do parts[i] = string.format('%.0f', list[i]) end
  return table.concat(parts, ',')
end
local function logaddexp(a, b)
  if a == nil then return b end
  local hi, lo = math.max(a, b), math.min(a, b)
  return hi + math.log(1 + math.exp(lo - hi))
end
-- log(e^x - 1) for x > 0, with neither overflow for large x nor cancellation for small x
-- (Lua 5.1 has no expm1: Kahan's (u - 1) * x / log u is exact to a few ulps).
local function log_expm1(x)
  if x > 1 then return x + math.log(1 - math.exp(-x)) end
  local u = math.exp(x)
  if u == 1 then return math.log(x) end
  return math.log((u - 1) * x / math.log(u))
end
-- log(m^a + m^(a+1) + ... + m^(a+n-1)), log_m = log m >= 0: the weight n accesses at ticks
-- a.. add, in one step. The geometric sum is m^a (m^n - 1) / (m - 1); exactly n when m = 1.
local function log_geometric(a, n, log_m)
  if log_m == 0 then return math.log(n) end
  return a * log_m + log_expm1(n * log_m) - log_expm1(log_m)
end
-- The eviction score (eviction_policy.h): LRU by last tick; cost-aware by
-- log weight + log cost - log bytes.
local function score_of(policy, lw, lt, cost, bytes)
  if policy == 'lru' then return lt end
  return lw + math.log(math.max(cost, 1e-3)) - math.log(math.max(bytes, 1))
end
-- Count `n` accesses of entry hash `e` (stats hash `stats`, score zset `score`, member `key`).
local function touch(stats, score, e, key, n, now, policy, log_m)
  if n < 1 then return end
  local u = redis.call('HMGET', e, 'lw', 'acc', 'cost', 'bytes')
  local tick = redis.call('HINCRBY', stats, 'tick', n)
  local lw = logaddexp(num(u[1], nil), log_geometric(tick - n + 1, n, log_m))
  redis.call('HSET', e, 'lw', fmt(lw), 'lt', int(tick), 'acc', int(num(u[2], 0) + n),
             'la', int(now))
  redis.call('ZADD', score, fmt(score_of(policy, lw, tick, num(u[3], 0), num(u[4], 0))), key)
end
-- Rescore after the entry's size changed, without counting an access.
local function rescore(score, e, key, policy)
  local u = redis.call('HMGET', e, 'lw', 'lt', 'cost', 'bytes')
  local s = score_of(policy, num(u[1], 0), num(u[2], 0), num(u[3], 0), num(u[4], 0))
  redis.call('ZADD', score, fmt(s), key)
end
-- Bump generation `name` (gen zset `gen`, stats hash `stats`), forgetting the oldest names
-- past `max_names`.
local function bump(stats, gen, name, max_names)
  local g = redis.call('HINCRBY', stats, 'gen', 1)
  redis.call('ZADD', gen, int(g), name)
  local extra = redis.call('ZCARD', gen) - max_names
  if extra > 0 then
    local old = redis.call('ZRANGE', gen, 0, extra - 1, 'WITHSCORES')
    redis.call('HSET', stats, 'gen_forgotten', old[#old])
    redis.call('ZREMRANGEBYRANK', gen, 0, extra - 1)
  end
end
-- Takes the oldest of `versions` (ascending) out until `keep` remain; returns them and the
-- bytes they hold in entry hash `e`.
-- The tenant the entries of `key` count against (index/entry.h, EntryTenant): for an object,
-- the first segment of a three-segment key; for a query result, the "tenant" of its entry
-- JSON, kept in its entry hash `e` as 'tn' (publish and restore set it); nil for none.
-- `json`: an entry of the key being stored (its 'tn' may not be set yet).
local function tenant_of(key, e, json)
  if string.sub(key, 1, 1) == '@' then
    if json then
      local t = cjson.decode(json).tenant
      if type(t) == 'string' and t ~= '' then return t end
      return nil
    end
    return redis.call('HGET', e, 'tn') or nil
  end
  local first = string.find(key, '/', 1, true)
  if not first or not string.find(key, '/', first + 1, true) then return nil end
  return string.sub(key, 1, first - 1)
end
-- Add to the totals, and to `tenant`'s ('tb:' / 'tk:' fields of the same hash; nil: none).
local function add_totals(stats, tenant, keys, versions, bytes)
  if bytes ~= 0 then redis.call('HINCRBY', stats, 'bytes', int(bytes)) end
  if versions ~= 0 then redis.call('HINCRBY', stats, 'versions', int(versions)) end
  if keys ~= 0 then redis.call('HINCRBY', stats, 'keys', int(keys)) end
  if not tenant then return end
  local tb = redis.call('HINCRBY', stats, 'tb:' .. tenant, int(bytes))
  local tk = redis.call('HINCRBY', stats, 'tk:' .. tenant, int(keys))
  if tb == 0 and tk == 0 then redis.call('HDEL', stats, 'tb:' .. tenant, 'tk:' .. tenant) end
end
local function oldest_past(e, versions, keep)
  local dropped, freed = {}, 0
  while #versions > keep do
    local old = table.remove(versions, 1)
    dropped[#dropped + 1] = old
    freed = freed + num(redis.call('HGET', e, 's:' .. old), 0)
  end
  return dropped, freed
end
-- Deletes versions `dropped` from entry hash `e`, appending their entries (JSON) to `out`.
local function forget(e, dropped, out)
  for _, old in ipairs(dropped) do
    out[#out + 1] = redis.call('HGET', e, 'm:' .. old)
    redis.call('HDEL', e, 'm:' .. old, 's:' .. old)
  end
  return out
end
-- The link sets of a key's latest version come last in KEYS: the `new` sets of the version
-- that becomes the latest, then the `old` sets of the one it replaces. Moves `key` over.
local function move_links(key, new, old)
  local first = #KEYS - new - old + 1
  for i = first + new, #KEYS do redis.call('SREM', KEYS[i], key) end
  for i = first, first + new - 1 do redis.call('SADD', KEYS[i], key) end
end
-- True if the last `old` KEYS are the link sets of the entry stored as `json` (false: no
-- entry), in order: its dependency sets, then its tag sets. KEYS[1] is P:meta, which gives P.
local function links_declared(json, old)
  local want = {}
  if json then
    local base, entry = string.sub(KEYS[1], 1, -5), cjson.decode(json)
    for _, d in ipairs(entry.depends_on or {}) do want[#want + 1] = base .. 'dep:' .. d end
    for _, t in ipairs(entry.tags or {}) do want[#want + 1] = base .. 'tag:' .. t end
  end
  if #want ~= old then return false end
  for i = 1, old do
    if KEYS[#KEYS - old + i] ~= want[i] then return false end
  end
  return true
end
)lua";

// KEYS: meta, entry.  ARGV: version ("" for the latest).
constexpr const char* kGet = R"lua(
if not ready(KEYS[1]) then return NOT_READY end
local v = ARGV[1]
if v == '' then
  v = redis.call('HGET', KEYS[2], 'lv')
  if not v then return false end
end
return redis.call('HGET', KEYS[2], 'm:' .. v)
)lua";

// Publish and restore take the same first KEYS and ARGV (RedisIndex::VersionCall):
// KEYS: meta, stats, entry, keys, score, then the script's own, then last the link sets
//   (the new version's dependency and tag sets, then those of the latest it replaces).
// ARGV: 1 key, 2 version, 3 blob, 4 meta json, 5 bytes, 6 cost_s, 7 created_ms,
//   8 expires_ms, 9 #new link sets, 10 #old link sets, 11 policy, 12 log_m, then the
//   script's own.

// Own KEYS: gen, lease.  Own ARGV: 13 expected version, 14 expected blob, 15 keep, 16 bump,
//   17 since, 18 lease token, 19 cache_size, 20 max_entries, 21 allow_one_over,
//   22 max generations, 23 the tenant's cache_size ('': no tenant budget), 24 its
//   max_entries, 25 its allow_one_over, then the watched generation names.
constexpr const char* kPublish = R"lua(
local meta, stats, e, keys, score = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local gen, lease = KEYS[6], KEYS[7]
local key, version, blob, json = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local bytes = tonumber(ARGV[5])
local new_links, old_links = tonumber(ARGV[9]), tonumber(ARGV[10])
if not ready(meta) then return NOT_READY end
local cur = redis.call('HMGET', e, 'lv', 'lb')
local lv, lb = num(cur[1], 0), cur[2] or ''
if lv ~= tonumber(ARGV[13]) or lb ~= ARGV[14] or version ~= lv + 1 then
  return {'conflict', int(lv)}
end
-- The caller names the link sets of the version it read (the compare-and-set above makes
-- them the current version's); naming others is the caller's error.
if not links_declared(lv > 0 and redis.call('HGET', e, 'm:' .. cur[1]), old_links) then
  return {'links'}
end
-- A fenced writer is told so first: whatever else changed, it lost its lease.
if ARGV[18] ~= '' then
  local held = redis.call('GET', lease)
  if not held or string.match(held, '^(%d+)|') ~= ARGV[18] then return {'lease', held or ''} end
end
local since = tonumber(ARGV[17])
if #ARGV >= 26 and since < num(redis.call('HGET', stats, 'gen_forgotten'), 0) then
  return {'stale', ''}
end
for i = 26, #ARGV do
  local g = redis.call('ZSCORE', gen, ARGV[i])
  if g and tonumber(g) > since then return {'stale', ARGV[i]} end
end
-- What trimming frees, to check the budget before changing anything.
local versions = split(redis.call('HGET', e, 'vs'))
versions[#versions + 1] = version
local trimmed, freed = oldest_past(e, versions, math.max(tonumber(ARGV[15]), 1))
local new_key = lv == 0
-- Whether totals (used, count) grown by this publish break the limits in ARGV[i..i+2]
-- (cache_size, max_entries, allow_one_over: '1' lets one publish go over while not over).
local function over_budget(i, used, count)
  local cache_size, max_entries = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local function over(b, k) return b > cache_size or (max_entries > 0 and k > max_entries) end
  return over(used + bytes - freed, count + (new_key and 1 or 0)) and
         (ARGV[i + 2] ~= '1' or over(used, count))
end
local t = redis.call('HMGET', stats, 'bytes', 'keys')
local used, count = num(t[1], 0), num(t[2], 0)
if ARGV[19] ~= '' and over_budget(19, used, count) then
  return {'budget', used .. ' bytes in ' .. count .. ' keys stored'}
end
local tenant = tenant_of(key, e, json)
if ARGV[23] ~= '' and tenant then
  local tt = redis.call('HMGET', stats, 'tb:' .. tenant, 'tk:' .. tenant)
  local tused, tcount = num(tt[1], 0), num(tt[2], 0)
  if over_budget(23, tused, tcount) then
    return {'budget', "tenant '" .. tenant .. "': " .. tused .. ' bytes in ' .. tcount ..
            ' keys stored'}
  end
end
local out = forget(e, trimmed, {'ok'})
local key_bytes = num(redis.call('HGET', e, 'bytes'), 0) + bytes - freed
redis.call('HSET', e, 'm:' .. version, json, 's:' .. version, ARGV[5], 'lv', ARGV[2], 'lb', blob,
           'vs', join(versions), 'bytes', int(key_bytes), 'cost', ARGV[6], 'created', ARGV[7],
           'exp', ARGV[8])
if tenant and string.sub(key, 1, 1) == '@' then redis.call('HSET', e, 'tn', tenant) end
add_totals(stats, tenant, new_key and 1 or 0, 1 - #trimmed, bytes - freed)
move_links(key, new_links, old_links)
redis.call('ZADD', keys, 0, key)
if ARGV[16] == '1' then bump(stats, gen, 'k:' .. key, tonumber(ARGV[22])) end
if ARGV[18] ~= '' then redis.call('DEL', lease) end
touch(stats, score, e, key, 1, tonumber(ARGV[7]), ARGV[11], tonumber(ARGV[12]))
return out
)lua";

// KEYS: meta, stats, entry, keys, score, gen, then the dependency and tag sets of the latest
// version.  ARGV: key, expected latest blob, bump, only-if-expired-at, only-if-blob, #deps,
// #tags, max generations.
constexpr const char* kRemove = R"lua(
local meta, stats, e, keys, score, gen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local key = ARGV[1]
if not ready(meta) then return NOT_READY end
local cur = redis.call('HMGET', e, 'lb', 'exp')
local lb = cur[1]
if lb and lb ~= ARGV[2] then return {'conflict'} end
if lb then
  if ARGV[4] ~= '' then
    local exp = num(cur[2], 0)
    if exp == 0 or tonumber(ARGV[4]) < exp then return {'ok'} end
  end
  if ARGV[5] ~= '' and lb ~= ARGV[5] then return {'ok'} end
end
if ARGV[3] == '1' then bump(stats, gen, 'k:' .. key, tonumber(ARGV[8])) end
if not lb then return {'ok'} end
local out = {'ok'}
local versions = split(redis.call('HGET', e, 'vs'))
for _, v in ipairs(versions) do out[#out + 1] = redis.call('HGET', e, 'm:' .. v) end
add_totals(stats, tenant_of(key, e), -1, -#versions, -num(redis.call('HGET', e, 'bytes'), 0))
for i = 7, #KEYS do redis.call('SREM', KEYS[i], key) end
redis.call('ZREM', keys, key)
redis.call('ZREM', score, key)
redis.call('DEL', e)
return out
)lua";

// KEYS: stats, entry, score.  ARGV: key, keep, policy.
constexpr const char* kTrim = R"lua(
local stats, e, score = KEYS[1], KEYS[2], KEYS[3]
local versions = split(redis.call('HGET', e, 'vs'))
local dropped, freed = oldest_past(e, versions, math.max(tonumber(ARGV[2]), 1))
if #dropped == 0 then return {} end
local out = forget(e, dropped, {})
local key_bytes = num(redis.call('HGET', e, 'bytes'), 0) - freed
redis.call('HSET', e, 'vs', join(versions), 'bytes', int(key_bytes))
add_totals(stats, tenant_of(ARGV[1], e), 0, -#dropped, -freed)
rescore(score, e, ARGV[1], ARGV[3])
return out
)lua";

// KEYS: meta, stats, gen, then one set per name (dependency sets of keys, then tag sets).
// ARGV: max generations, then one generation name per set. Returns each key once.
constexpr const char* kBumpAndCollect = R"lua(
local stats, gen = KEYS[2], KEYS[3]
if not ready(KEYS[1]) then return NOT_READY end
local found, out = {}, {}
for i = 2, #ARGV do
  bump(stats, gen, ARGV[i], tonumber(ARGV[1]))
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[i + 2])) do
    if not found[k] then
      found[k] = true
      out[#out + 1] = k
    end
  end
end
return out
)lua";

// KEYS: stats, score, entry.  ARGV: key, count, now, policy, log_m.
constexpr const char* kTouch = R"lua(
if redis.call('HEXISTS', KEYS[3], 'lv') == 0 then return 0 end
touch(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
      tonumber(ARGV[5]))
return 1
)lua";

// KEYS: entry, score.  Returns the latest meta and the key's use: bytes, cost, accesses,
// created, last access, score (strings); nil if absent.
constexpr const char* kDescribe = R"lua(
local lv = redis.call('HGET', KEYS[1], 'lv')
if not lv then return false end
local u = redis.call('HMGET', KEYS[1], 'm:' .. lv, 'bytes', 'cost', 'acc', 'created', 'la')
u[7] = redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0'
for i = 2, 6 do u[i] = u[i] or '0' end
return u
)lua";

// KEYS: lease, stats.  ARGV: owner, endpoint, ttl ms.
// Returns {1, token} when granted, {0, holder, ttl left} when held.
constexpr const char* kLeaseAcquire = R"lua(
local held = redis.call('GET', KEYS[1])
if held then return {0, held, redis.call('PTTL', KEYS[1])} end
local token = redis.call('HINCRBY', KEYS[2], 'fence', 1)
redis.call('SET', KEYS[1], string.format('%.0f', token) .. '|' .. ARGV[1] .. '|' .. ARGV[2],
           'PX', ARGV[3])
return {1, token}
)lua";

// KEYS: lease.  ARGV: token, ttl ms (renew) or "" (release).
constexpr const char* kLeaseKeep = R"lua(
local held = redis.call('GET', KEYS[1])
if not held or string.match(held, '^(%d+)|') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
)lua";

// KEYS and ARGV as publish's first ones (above); no own KEYS. Own ARGV: 13 expected latest
// blob.
// Refuses once the index is ready: a rebuilder that was slower than another must not write
// into the live index. Restoring the same version twice (a rebuild started again) is fine.
// However many of a key's versions are restored, its use is one access, at the creation of
// its latest.
constexpr const char* kRestore = R"lua(
local meta, stats, e, keys, score = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if ready(meta) then return 'ready' end
local key, version, bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5])
local cur = redis.call('HMGET', e, 'lv', 'lb')
local lv, lb = num(cur[1], 0), cur[2] or ''
if lb ~= ARGV[13] then return 'conflict' end
local stored = redis.call('HGET', e, 'm:' .. version)
if stored then
  if stored == ARGV[4] then return 'ok' end
  return 'exists'
end
local versions = split(redis.call('HGET', e, 'vs'))
versions[#versions + 1] = version
table.sort(versions)
redis.call('HSET', e, 'm:' .. version, ARGV[4], 's:' .. version, ARGV[5], 'vs', join(versions),
           'bytes', int(num(redis.call('HGET', e, 'bytes'), 0) + bytes))
local tenant = tenant_of(key, e, ARGV[4])
if tenant and string.sub(key, 1, 1) == '@' then redis.call('HSET', e, 'tn', tenant) end
add_totals(stats, tenant, lv == 0 and 1 or 0, 1, bytes)
if version > lv then
  redis.call('HSET', e, 'lv', ARGV[2], 'lb', ARGV[3], 'cost', ARGV[6], 'created', ARGV[7],
             'exp', ARGV[8])
  move_links(key, tonumber(ARGV[9]), tonumber(ARGV[10]))
  redis.call('ZADD', keys, 0, key)
end
if lv == 0 then
  touch(stats, score, e, key, 1, tonumber(ARGV[7]), ARGV[11], tonumber(ARGV[12]))
else
  if version > lv then redis.call('HSET', e, 'la', ARGV[7]) end
  rescore(score, e, key, ARGV[11])
end
return 'ok'
)lua";

// KEYS: meta, stats.  ARGV: floor, node, now ms, the cluster secret the node uses ("": none).
// The counters of an index rebuilt after its server lost them start above anything issued
// before (the floor is time-based, ahead of any earlier count), and snapshots taken before
// are refused: a put or fill that began before the loss cannot be checked, so it is not
// published; a lease token of before never matches a new one. The nodes keep the cluster
// secret they sign tickets with, unless one was set meanwhile.
constexpr const char* kMarkRebuilt = R"lua(
local floor = tonumber(ARGV[1])
for _, field in ipairs({'gen', 'fence', 'gen_forgotten'}) do
  if num(redis.call('HGET', KEYS[2], field), 0) < floor then
    redis.call('HSET', KEYS[2], field, ARGV[1])
  end
end
if ARGV[4] ~= '' then redis.call('HSETNX', KEYS[1], 'secret', ARGV[4]) end
redis.call('HSET', KEYS[1], 'ready', '1', 'format', '1', 'rebuilt_ms', ARGV[3],
           'rebuilt_by', ARGV[2])
return 'ok'
)lua";

std::string WithHelpers(const char* body) { return std::string(kHelpers) + body; }

using redis::Repeat;

}  // namespace

const RedisScripts& RedisScripts::Get() {
  static const RedisScripts scripts;
  return scripts;
}

RedisScripts::RedisScripts()
    : get(WithHelpers(kGet), Repeat::kSafe),
      publish(WithHelpers(kPublish), Repeat::kNever),
      remove(WithHelpers(kRemove), Repeat::kNever),
      trim(WithHelpers(kTrim), Repeat::kNever),
      bump_and_collect(WithHelpers(kBumpAndCollect), Repeat::kSafe),
      touch(WithHelpers(kTouch), Repeat::kNever),
      describe(WithHelpers(kDescribe), Repeat::kSafe),
      lease_acquire(kLeaseAcquire, Repeat::kNever),
      lease_keep(kLeaseKeep, Repeat::kSafe),
      restore(WithHelpers(kRestore), Repeat::kNever),
      mark_rebuilt(WithHelpers(kMarkRebuilt), Repeat::kSafe) {}

std::string ScriptNumber(double x) { return fmt::format("{:.17g}", x); }

ScoringArgs::ScoringArgs(const ScoringPolicy& scoring)
    : policy(scoring.name == "lru" ? "lru" : "cost"),
      log_m(ScriptNumber(std::log1p(std::log(2.0) / (scoring.half_life > 0 ? scoring.half_life
                                                                           : 1000)))) {}

arrow::Result<int64_t> ParseReplyInteger(std::string_view text, std::string_view what) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return arrow::Status::IOError("index: ", what, " is not an integer: '", text, "'");
  }
  return value;
}

arrow::Result<double> ParseReplyDouble(std::string_view text, std::string_view what) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return arrow::Status::IOError("index: ", what, " is not a number: '", text, "'");
  }
  return value;
}

std::optional<LeaseHolder> ParseLeaseValue(const std::string& value, int64_t ttl_ms) {
  const size_t first = value.find('|');
  const size_t last = value.rfind('|');
  if (first == std::string::npos || last == first) return std::nullopt;
  auto token = ParseReplyInteger(std::string_view(value).substr(0, first), "a lease token");
  if (!token.ok() || *token < 0) return std::nullopt;
  LeaseHolder holder;
  holder.token = static_cast<uint64_t>(*token);
  holder.owner = value.substr(first + 1, last - first - 1);
  holder.endpoint = value.substr(last + 1);
  holder.ttl_ms = ttl_ms;
  return holder;
}

}  // namespace quiver
