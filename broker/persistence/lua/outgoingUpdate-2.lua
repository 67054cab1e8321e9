--[[
  Records the packet identifier a queued packet was sent with, so a
  retransmission after reconnect reuses it and the PUBACK can find it.

  KEYS[1] qp:<clientId>, KEYS[2] qm:<clientId>
  ARGV[1] packet key, ARGV[2] messageId
  Returns 1 if the packet is queued, 0 if not (not an error: a live message
  may reach a client whose queue entry was already capped away).
]]
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[2], '#' .. ARGV[1])
if old then redis.call('HDEL', KEYS[2], old) end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1], '#' .. ARGV[1], ARGV[2])
return 1
