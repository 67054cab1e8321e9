-- Where the definitions log stands, in one read: the current version, and
-- the write ids of the caller's version and of the current one ('' = none
-- stored). A node compares them with its memory to find lost notices (it is
-- behind) and failovers that lost versions (Redis is behind, or a version
-- number now holds another write).
-- KEYS[1] definitions version (STRING), KEYS[2] definitions log HASH
-- ARGV[1] the caller's version
-- Returns { current version, id of ARGV[1], id of current version }
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local at = redis.call('HGET', KEYS[2], 'id:' .. ARGV[1]) or ''
local head = redis.call('HGET', KEYS[2], 'id:' .. cur) or ''
return { cur, at, head }
