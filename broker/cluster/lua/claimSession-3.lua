--[[
  A client id connects on a node: it gets a new, cluster-wide increasing
  connection epoch and becomes the holder of that client id. Every node hears
  the takeover notice; a node holding the same client id with a lower epoch
  closes it. Of two simultaneous connects, exactly the higher epoch survives.

  A node the cluster declared dead (its brokerId in `gone`) may not claim:
  ioredis replays the commands it queued during the cut before its first
  heartbeat can answer "fenced", and a claim from it would take a client id
  away from a live holder in the name of an incarnation nobody serves.

  KEYS[1] owners  HASH clientId -> "brokerId|epoch|state|persistent(1/0)"
  KEYS[2] epoch   counter
  KEYS[3] gone    ZSET brokerId -> when declared dead
  ARGV[1] clientId, ARGV[2] brokerId, ARGV[3] control channel, ARGV[4] "1" for a persistent session
  Returns { epoch, previous holder record or "" }, or the error
  "BROKER_FENCED ..." (nothing written) when ARGV[2] is in `gone`.
]]
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then
  return redis.error_reply('BROKER_FENCED ' .. ARGV[2] .. ' was declared dead; claim refused')
end
local epoch = redis.call('INCR', KEYS[2])
local prev = redis.call('HGET', KEYS[1], ARGV[1]) or ''
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. epoch .. '|up|' .. ARGV[4])
redis.call('PUBLISH', ARGV[3], cjson.encode({ v = 1, t = 'takeover', c = ARGV[1], b = ARGV[2], e = epoch }))
return { epoch, prev }
