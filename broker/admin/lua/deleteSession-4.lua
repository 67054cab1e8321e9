--[[
  Deletes one persistent session no connection holds: subscriptions, queue,
  inbound QoS2 state, expiry entry and ownership record, and announces a
  "clean" subscription change with a new index version (as expireSessions-4).

  KEYS[1] sessions    ZSET clientId -> disconnected-at (ms)
  KEYS[2] subclients  SET
  KEYS[3] subver      counter
  KEYS[4] owners      HASH clientId -> "brokerId|epoch|state|persistent"
  ARGV[1] clientId, ARGV[2] key prefix, ARGV[3] control channel
  Returns 1 deleted, 0 no such session, -1 refused: a client holds it ("|up|").
]]
local c = ARGV[1]
local p = ARGV[2]
local owner = redis.call('HGET', KEYS[4], c)
if owner and string.find(owner, '|up|', 1, true) then return -1 end
local existed = redis.call('EXISTS', p .. 'subs:' .. c, p .. 'q:' .. c, p .. 'qp:' .. c, p .. 'qm:' .. c, p .. 'in:' .. c)
  + redis.call('ZREM', KEYS[1], c) + (owner and 1 or 0)
if existed == 0 then return 0 end
redis.call('DEL', p .. 'subs:' .. c, p .. 'q:' .. c, p .. 'qp:' .. c, p .. 'qm:' .. c, p .. 'in:' .. c)
redis.call('HDEL', KEYS[4], c)
if redis.call('SREM', KEYS[2], c) == 1 then
  local ver = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[3], cjson.encode({ v = 1, t = 'subs', ver = ver, c = c, op = 'clean', ch = {} }))
end
return 1
