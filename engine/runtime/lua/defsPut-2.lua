-- Appends one batch of definition changes as the next version, if nobody
-- appended since the caller read the version (compare-and-set).
-- KEYS[1] definitions version (STRING)
-- KEYS[2] definitions log HASH version -> JSON changes
-- ARGV[1] expected current version, ARGV[2] JSON changes
-- Returns { 1, new version } or { 0, current version }
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then return { 0, cur } end
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], v, ARGV[2])
return { 1, v }
