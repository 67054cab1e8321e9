--[[
  Renews one node's membership, reaps nodes that stopped beating, and reports
  the live members, all against Redis server time so node clocks do not matter.

  KEYS[1] alive  ZSET brokerId -> last beat (ms)
  KEYS[2] nodes  HASH brokerId -> member json
  KEYS[3] dead   SET brokerIds whose wills are not all published yet
  KEYS[4] gone   ZSET brokerId -> when declared dead (ms), trimmed after a day
  ARGV[1] brokerId, ARGV[2] member json, ARGV[3] deadAfterMs
  ARGV[4] '1' if this node may reap ('0' while its own Redis link has not been
          up for deadAfterMs: after a failover or outage every peer looks
          silent until it has had time to reconnect); absent = '1' (older nodes)
  Returns { now, fenced (0/1), { brokerId, json, ... }, { reaped brokerIds } }
  fenced = 1 when this node was itself declared dead while it was paused or
  cut off: its clients' wills are being published (or were: `dead` forgets a
  node once its wills are out, `gone` remembers it), its interest set was
  deleted, so it must not go on serving them. (A Redis that lost its data is
  not fencing: nobody reaped us.)

  A node reaps only if its own previous beat is younger than deadAfterMs, in
  Redis time: a node that would itself count as dead (its beat was queued
  while Redis was paused, or this Redis is a freshly promoted replica) has not
  been watching either, so its peers' silence proves nothing.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadAfter = tonumber(ARGV[3])
local limit = now - deadAfter
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400000)
local fenced = redis.call('SISMEMBER', KEYS[3], ARGV[1])
if fenced == 0 and redis.call('ZSCORE', KEYS[4], ARGV[1]) then fenced = 1 end
-- A fenced node is not a member again: it drops its clients and exits.
if fenced == 1 then return { now, 1, {}, {} } end
local mayReap = ARGV[4] ~= '0'
if mayReap then
  local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
  mayReap = mine ~= false and now - tonumber(mine) < deadAfter
end
local reaped = {}
if mayReap then reaped = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', limit) end
for _, b in ipairs(reaped) do
  if b ~= ARGV[1] then
    redis.call('ZREM', KEYS[1], b)
    redis.call('HDEL', KEYS[2], b)
    redis.call('SADD', KEYS[3], b)
    redis.call('ZADD', KEYS[4], now, b)
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local members = {}
for _, b in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  members[#members + 1] = b
  members[#members + 1] = redis.call('HGET', KEYS[2], b) or '{}'
end
local out = {}
for _, b in ipairs(reaped) do if b ~= ARGV[1] then out[#out + 1] = b end end
return { now, fenced, members, out }
