// The Lua scripts of the Redis index. Each touches only keys passed in KEYS (Dragonfly's
// rule), all of them under the cache's one hash tag, and returns strings where a float would
// otherwise be truncated to an integer. The layout is in docs/design/redis_schema.md.
#include "index/redis_scripts.h"

namespace quiver {

namespace {

// Shared helpers, prepended to the scripts that need them.
constexpr const char* kHelpers = R"lua(
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
-- Count `n` accesses of entry hash `e` (stats hash `stats`, score zset `score`, member `key`).
local function touch(stats, score, e, key, n, now, policy, log_m)
  local u = redis.call('HMGET', e, 'lw', 'lt', 'acc', 'cost', 'bytes')
  local lw, lt, acc = num(u[1], nil), num(u[2], 0), num(u[3], 0)
  local cost, bytes = num(u[4], 0), num(u[5], 0)
  local tick = redis.call('HINCRBY', stats, 'tick', n)
  for t = tick - n + 1, tick do lw = logaddexp(lw, t * log_m) end
  lt = tick
  redis.call('HSET', e, 'lw', fmt(lw), 'lt', int(lt), 'acc', int(acc + n), 'la', int(now))
  local s
  if policy == 'lru' then s = lt else
    s = lw + math.log(math.max(cost, 1e-3)) - math.log(math.max(bytes, 1))
  end
  redis.call('ZADD', score, fmt(s), key)
end
-- Rescore after the entry's size changed, without counting an access.
local function rescore(score, e, key, policy)
  local u = redis.call('HMGET', e, 'lw', 'lt', 'cost', 'bytes')
  local s
  if policy == 'lru' then s = num(u[2], 0) else
    s = num(u[1], 0) + math.log(math.max(num(u[3], 0), 1e-3)) - math.log(math.max(num(u[4], 0), 1))
  end
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
local function not_ready(meta)
  return redis.call('HGET', meta, 'ready') ~= '1'
end
)lua";

// KEYS: meta, entry.  ARGV: version ("" for the latest).
constexpr const char* kGet = R"lua(
if not_ready(KEYS[1]) then return redis.error_reply('QUIVER_NOTREADY index is being rebuilt') end
local v = ARGV[1]
if v == '' then
  v = redis.call('HGET', KEYS[2], 'lv')
  if not v then return false end
end
return redis.call('HGET', KEYS[2], 'm:' .. v)
)lua";

// KEYS: meta, stats, entry, keys, score, gen, lease, then the dependency sets of the new
// version, its tag sets, the dependency sets of the version it replaces, its tag sets.
// ARGV: key, version, blob, meta json, bytes, expected version, expected blob, keep, bump,
//   since, lease token, cache_size, max_entries, allow_one_over, policy, log_m, cost_s,
//   created_ms, expires_ms, #new deps, #new tags, #old deps, #old tags, max generations,
//   then the watched generation names.
constexpr const char* kPublish = R"lua(
local meta, stats, e, keys, score, gen, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local key, version, blob, json, bytes = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
if not_ready(meta) then return redis.error_reply('QUIVER_NOTREADY index is being rebuilt') end
local cur = redis.call('HMGET', e, 'lv', 'lb')
local lv, lb = num(cur[1], 0), cur[2] or ''
if lv ~= tonumber(ARGV[6]) or lb ~= ARGV[7] or version ~= lv + 1 then
  return {'conflict', tostring(lv)}
end
-- A fenced writer is told so first: whatever else changed, it lost its lease.
if ARGV[11] ~= '' then
  local held = redis.call('GET', lease)
  if not held or string.match(held, '^(%d+)|') ~= ARGV[11] then return {'lease', held or ''} end
end
local since = tonumber(ARGV[10])
if #ARGV >= 25 and since < num(redis.call('HGET', stats, 'gen_forgotten'), 0) then
  return {'stale', ''}
end
for i = 25, #ARGV do
  local g = redis.call('ZSCORE', gen, ARGV[i])
  if g and tonumber(g) > since then return {'stale', ARGV[i]} end
end
-- What trimming frees, to check the budget before changing anything.
local versions = split(redis.call('HGET', e, 'vs'))
versions[#versions + 1] = version
local keep, trimmed, freed = math.max(tonumber(ARGV[8]), 1), {}, 0
while #versions > keep do
  local old = table.remove(versions, 1)
  trimmed[#trimmed + 1] = old
  freed = freed + num(redis.call('HGET', e, 's:' .. old), 0)
end
local t = redis.call('HMGET', stats, 'bytes', 'keys')
local used, count = num(t[1], 0), num(t[2], 0)
local new_key = lv == 0
if ARGV[12] ~= '' then
  local cache_size, max_entries = tonumber(ARGV[12]), tonumber(ARGV[13])
  local function over(b, k) return b > cache_size or (max_entries > 0 and k > max_entries) end
  if over(used + bytes - freed, count + (new_key and 1 or 0)) and
     (ARGV[14] ~= '1' or over(used, count)) then
    return {'budget', used .. ' bytes in ' .. count .. ' keys stored'}
  end
end
local out = {'ok'}
for _, old in ipairs(trimmed) do
  out[#out + 1] = redis.call('HGET', e, 'm:' .. old)
  redis.call('HDEL', e, 'm:' .. old, 's:' .. old)
end
local key_bytes = num(redis.call('HGET', e, 'bytes'), 0) + bytes - freed
redis.call('HSET', e, 'm:' .. version, json, 's:' .. version, ARGV[5], 'lv', ARGV[2], 'lb', blob,
           'vs', join(versions), 'bytes', int(key_bytes), 'cost', ARGV[17], 'created', ARGV[18],
           'exp', ARGV[19])
redis.call('HINCRBY', stats, 'bytes', int(bytes - freed))
redis.call('HINCRBY', stats, 'versions', int(1 - #trimmed))
if new_key then redis.call('HINCRBY', stats, 'keys', 1) end
local nd, nt, od, ot = tonumber(ARGV[20]), tonumber(ARGV[21]), tonumber(ARGV[22]), tonumber(ARGV[23])
for i = 8 + nd + nt, 7 + nd + nt + od + ot do redis.call('SREM', KEYS[i], key) end
for i = 8, 7 + nd + nt do redis.call('SADD', KEYS[i], key) end
redis.call('ZADD', keys, 0, key)
if ARGV[9] == '1' then bump(stats, gen, 'k:' .. key, tonumber(ARGV[24])) end
if ARGV[11] ~= '' then redis.call('DEL', lease) end
touch(stats, score, e, key, 1, tonumber(ARGV[18]), ARGV[15], tonumber(ARGV[16]))
return out
)lua";

// KEYS: meta, stats, entry, keys, score, gen, then the dependency and tag sets of the latest
// version.  ARGV: key, expected latest blob, bump, only-if-expired-at, only-if-blob, #deps,
// #tags, max generations.
constexpr const char* kRemove = R"lua(
local meta, stats, e, keys, score, gen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local key = ARGV[1]
if not_ready(meta) then return redis.error_reply('QUIVER_NOTREADY index is being rebuilt') end
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
redis.call('HINCRBY', stats, 'bytes', int(-num(redis.call('HGET', e, 'bytes'), 0)))
redis.call('HINCRBY', stats, 'versions', int(-#versions))
redis.call('HINCRBY', stats, 'keys', -1)
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
local keep, out, freed = math.max(tonumber(ARGV[2]), 1), {}, 0
while #versions > keep do
  local old = table.remove(versions, 1)
  out[#out + 1] = redis.call('HGET', e, 'm:' .. old)
  freed = freed + num(redis.call('HGET', e, 's:' .. old), 0)
  redis.call('HDEL', e, 'm:' .. old, 's:' .. old)
end
if #out == 0 then return out end
redis.call('HSET', e, 'vs', join(versions), 'bytes', int(num(redis.call('HGET', e, 'bytes'), 0) - freed))
redis.call('HINCRBY', stats, 'bytes', int(-freed))
redis.call('HINCRBY', stats, 'versions', int(-#out))
rescore(score, e, ARGV[1], ARGV[3])
return out
)lua";

// KEYS: meta, stats, gen, then one set per name (dependency sets of keys, then tag sets).
// ARGV: max generations, then one generation name per set.
constexpr const char* kBumpAndCollect = R"lua(
local stats, gen = KEYS[2], KEYS[3]
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

// KEYS: meta, stats, entry, score, keys, then the dependency and tag sets of the version
// restored (if it becomes the latest), then those of the latest it replaces.
// ARGV: key, version, blob, meta json, bytes, expected latest blob, cost_s, created_ms,
//   expires_ms, #new deps, #new tags, #old deps, #old tags, policy, log_m.
// Refuses once the index is ready: a rebuilder that was slower than another must not write
// into the live index. Restoring the same version twice (a rebuild started again) is fine.
constexpr const char* kRestore = R"lua(
local meta, stats, e, score = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', meta, 'ready') == '1' then return 'ready' end
local key, version, bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5])
local cur = redis.call('HMGET', e, 'lv', 'lb')
local lv, lb = num(cur[1], 0), cur[2] or ''
if lb ~= ARGV[6] then return 'conflict' end
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
redis.call('HINCRBY', stats, 'bytes', ARGV[5])
redis.call('HINCRBY', stats, 'versions', 1)
if lv == 0 then redis.call('HINCRBY', stats, 'keys', 1) end
if version > lv then
  redis.call('HSET', e, 'lv', ARGV[2], 'lb', ARGV[3], 'cost', ARGV[7], 'created', ARGV[8],
             'exp', ARGV[9])
  local nd, nt, od, ot = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
  for i = 6 + nd + nt, 5 + nd + nt + od + ot do redis.call('SREM', KEYS[i], key) end
  for i = 6, 5 + nd + nt do redis.call('SADD', KEYS[i], key) end
  redis.call('ZADD', KEYS[5], 0, key)
end
touch(stats, score, e, key, 1, tonumber(ARGV[8]), ARGV[14], tonumber(ARGV[15]))
return 'ok'
)lua";

// KEYS: meta, stats.  ARGV: floor, node, now ms.
// The counters of an index rebuilt after its server lost them start above anything issued
// before (the floor is time-based, ahead of any earlier count), and snapshots taken before
// are refused: a put or fill that began before the loss cannot be checked, so it is not
// published; a lease token of before never matches a new one.
constexpr const char* kMarkRebuilt = R"lua(
local floor = tonumber(ARGV[1])
for _, field in ipairs({'gen', 'fence', 'gen_forgotten'}) do
  if num(redis.call('HGET', KEYS[2], field), 0) < floor then
    redis.call('HSET', KEYS[2], field, ARGV[1])
  end
end
redis.call('HSET', KEYS[1], 'ready', '1', 'format', '1', 'rebuilt_ms', ARGV[3],
           'rebuilt_by', ARGV[2])
return 'ok'
)lua";

std::string WithHelpers(const char* body) { return std::string(kHelpers) + body; }

}  // namespace

const RedisScripts& RedisScripts::Get() {
  static const RedisScripts scripts;
  return scripts;
}

RedisScripts::RedisScripts()
    : get(WithHelpers(kGet)),
      publish(WithHelpers(kPublish)),
      remove(WithHelpers(kRemove)),
      trim(WithHelpers(kTrim)),
      bump_and_collect(WithHelpers(kBumpAndCollect)),
      touch(WithHelpers(kTouch)),
      describe(WithHelpers(kDescribe)),
      lease_acquire(kLeaseAcquire),
      lease_keep(kLeaseKeep),
      restore(WithHelpers(kRestore)),
      mark_rebuilt(WithHelpers(kMarkRebuilt)) {}

}  // namespace quiver
