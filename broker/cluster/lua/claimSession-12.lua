--[[
  A client id connects on a node: it gets a new, cluster-wide increasing
  connection epoch and becomes the holder of that client id. Every node hears
  the takeover notice; a node holding the same client id with a lower epoch
  closes it. Of two simultaneous connects, exactly the higher epoch survives.

  The same call does the session work of the CONNECT that aedes would
  otherwise ask for in four more round trips (issue 8: each one's commands,
  promises and reply buffers were most of a clean connect's garbage):
  - any earlier will of this client id is void (aedes' delWill at CONNECT;
    a will in this CONNECT is stored after, by putWill-3.lua);
  - the client id is connected, so not a session to expire;
  - a clean session discards the previous session's state [MQTT-3.1.2-6]:
    subscriptions (announced as a "clean" subscription change only if there
    were any, so connects without history cost other nodes nothing), the
    outgoing queue and the inbound QoS 2 state.

  A node the cluster declared dead (its brokerId in `gone`) may not claim:
  ioredis replays the commands it queued during the cut before its first
  heartbeat can answer "fenced", and a claim from it would take a client id
  away from a live holder in the name of an incarnation nobody serves. Nor
  may it delete the will or session state of a client connected elsewhere.

  KEYS[1] owners      HASH clientId -> "brokerId|epoch|state|persistent(1/0)"
  KEYS[2] epoch       counter
  KEYS[3] gone        ZSET brokerId -> when declared dead
  KEYS[4] wills       HASH clientId -> brokerId .. "\n" .. encoded packet
  KEYS[5] sessions    ZSET clientId -> disconnected-at (ms), for expiry
  KEYS[6] subs:<clientId>, KEYS[7] subclients, KEYS[8] subver
  KEYS[9] q:<clientId>, KEYS[10] qp:<clientId>, KEYS[11] qm:<clientId>, KEYS[12] in:<clientId>
  ARGV[1] clientId, ARGV[2] brokerId, ARGV[3] control channel,
  ARGV[4] "1" for a persistent session, ARGV[5] key prefix (wills:<brokerId>)
  Returns { epoch, previous holder record or "", index version of the
  subscription change or 0 (none) }, or the error "BROKER_FENCED ..."
  (nothing written) when ARGV[2] is in `gone`.
]]
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then
  return redis.error_reply('BROKER_FENCED ' .. ARGV[2] .. ' was declared dead; claim refused')
end
local c = ARGV[1]
local epoch = redis.call('INCR', KEYS[2])
local prev = redis.call('HGET', KEYS[1], c) or ''
redis.call('HSET', KEYS[1], c, ARGV[2] .. '|' .. epoch .. '|up|' .. ARGV[4])
redis.call('PUBLISH', ARGV[3], cjson.encode({ v = 1, t = 'takeover', c = c, b = ARGV[2], e = epoch }))

local will = redis.call('HGET', KEYS[4], c)
if will then
  redis.call('HDEL', KEYS[4], c)
  redis.call('SREM', ARGV[5] .. 'wills:' .. string.sub(will, 1, string.find(will, '\n', 1, true) - 1), c)
end
redis.call('ZREM', KEYS[5], c)

local ver = 0
if ARGV[4] ~= '1' then
  local listed = redis.call('SREM', KEYS[7], c) == 1
  if redis.call('DEL', KEYS[6]) == 1 or listed then
    ver = redis.call('INCR', KEYS[8])
    redis.call('PUBLISH', ARGV[3], cjson.encode({ v = 1, t = 'subs', ver = ver, c = c, op = 'clean', ch = {} }))
  end
  redis.call('DEL', KEYS[9], KEYS[10], KEYS[11], KEYS[12])
end
return { epoch, prev, ver }
