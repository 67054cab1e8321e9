--[[
  Renews one node's membership, reaps nodes that stopped beating, and reports
  the live members, all against Redis server time so node clocks do not matter.

  KEYS[1] alive  ZSET brokerId -> last beat (ms)
  KEYS[2] nodes  HASH brokerId -> member json
  KEYS[3] dead   SET brokerIds whose wills are not all published yet
  ARGV[1] brokerId, ARGV[2] member json, ARGV[3] deadAfterMs
  Returns { now, wasMember (0/1), { brokerId, json, lastBeat, ... }, { reaped brokerIds } }
  wasMember = 0 on a node's first beat, or when it was reaped while paused:
  then its clients' wills are already out and it must drop its clients.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = now - tonumber(ARGV[3])
local wasMember = redis.call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
local reaped = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', limit)
for _, b in ipairs(reaped) do
  if b ~= ARGV[1] then
    redis.call('ZREM', KEYS[1], b)
    redis.call('HDEL', KEYS[2], b)
    redis.call('SADD', KEYS[3], b)
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
return { now, wasMember, members, out }
