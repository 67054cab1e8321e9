--[[
  Deletes persistent sessions whose client has been gone longer than the
  expiry: subscriptions, queue, inbound QoS2 state and ownership record, and
  announces each as a "clean" subscription change with a new index version.
  Safe to run on every node at once: a session is expired by exactly one call.

  KEYS[1] sessions    ZSET clientId -> disconnected-at (ms)
  KEYS[2] subclients  SET
  KEYS[3] subver      counter
  KEYS[4] owners      HASH clientId -> "brokerId|epoch|state|persistent"
  ARGV[1] cutoff (ms): sessions disconnected before it expire
  ARGV[2] key prefix, ARGV[3] control channel, ARGV[4] batch size
  Returns the expired clientIds.
]]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local p = ARGV[2]
for _, c in ipairs(expired) do
  redis.call('ZREM', KEYS[1], c)
  local owner = redis.call('HGET', KEYS[4], c)
  -- A client that reconnected meanwhile holds its id again ("|up|"): keep it.
  if not (owner and string.find(owner, '|up|', 1, true)) then
    redis.call('DEL', p .. 'subs:' .. c, p .. 'q:' .. c, p .. 'qp:' .. c, p .. 'qm:' .. c, p .. 'in:' .. c)
    redis.call('SREM', KEYS[2], c)
    redis.call('HDEL', KEYS[4], c)
    local ver = redis.call('INCR', KEYS[3])
    redis.call('PUBLISH', ARGV[3], cjson.encode({ v = 1, t = 'subs', ver = ver, c = c, op = 'clean', ch = {} }))
  end
end
return expired
