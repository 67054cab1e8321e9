--[[
  A client id connects on a node: it gets a new, cluster-wide increasing
  connection epoch and becomes the holder of that client id. Every node hears
  the takeover notice; a node holding the same client id with a lower epoch
  closes it. Of two simultaneous connects, exactly the higher epoch survives.

  KEYS[1] owners  HASH clientId -> "brokerId|epoch|state|persistent(1/0)"
  KEYS[2] epoch   counter
  ARGV[1] clientId, ARGV[2] brokerId, ARGV[3] control channel, ARGV[4] "1" for a persistent session
  Returns { epoch, previous holder record or "" }
]]
local epoch = redis.call('INCR', KEYS[2])
local prev = redis.call('HGET', KEYS[1], ARGV[1]) or ''
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. epoch .. '|up|' .. ARGV[4])
redis.call('PUBLISH', ARGV[3], cjson.encode({ v = 1, t = 'takeover', c = ARGV[1], b = ARGV[2], e = epoch }))
return { epoch, prev }
