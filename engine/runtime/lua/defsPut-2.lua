-- Appends one batch of definition changes as the next version, if nobody
-- appended since the caller read the version (compare-and-set on Redis's
-- current version, never on the caller's memory).
-- KEYS[1] definitions version (STRING)
-- KEYS[2] definitions log HASH version -> JSON changes, 'id:'..version -> write id
-- ARGV[1] expected current version, ARGV[2] JSON changes,
-- ARGV[3] write id of the expected version as the caller knows it ('' = none),
-- ARGV[4] write id of the new version (absent: a caller without write ids)
-- Returns { 1, new version } or { 0, current version }
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local expected = tonumber(ARGV[1])
if cur ~= expected then return { 0, cur } end
-- Same number is not same history: after a failover lost a version and
-- another writer reused its number, the caller validated against a state
-- Redis no longer has.
if ARGV[4] ~= nil and expected > 0 then
  local known = redis.call('HGET', KEYS[2], 'id:' .. expected) or ''
  if known ~= ARGV[3] then return { 0, cur } end
end
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], v, ARGV[2])
if ARGV[4] ~= nil then redis.call('HSET', KEYS[2], 'id:' .. v, ARGV[4]) end
return { 1, v }
