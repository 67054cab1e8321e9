--[[
  Client ids connect on a node: each gets a new, cluster-wide increasing
  connection epoch and its node becomes the holder of that client id. Every
  node hears a takeover notice per claim; a node holding the same client id
  with a lower epoch closes it. Of two simultaneous connects, exactly the
  higher epoch survives. One call carries every claim a node made in an
  event-loop turn (cluster/claim-batch.ts), applied in order, each as it
  would be alone (a later claim of the same id in the call replaces the
  earlier one and reports it as previous holder).

  Each claim also does the session work of its CONNECT that aedes would
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
  away from a live holder in the name of an incarnation nobody serves, and
  delete the will and session state of a client connected elsewhere.

  KEYS[1] owners      HASH clientId -> "brokerId|epoch|state|persistent(1/0)"
  KEYS[2] epoch       counter
  KEYS[3] gone        ZSET brokerId -> when declared dead
  KEYS[4] wills       HASH clientId -> brokerId .. "\n" .. encoded packet
  KEYS[5] sessions    ZSET clientId -> disconnected-at (ms), for expiry
  KEYS[6] subclients  SET, KEYS[7] subver counter
  Per client id, under ARGV[2]: subs:<id>, q:<id>, qp:<id>, qm:<id>, in:<id>,
  and wills:<brokerId> of an earlier will's holder (keys.ts names them).
  ARGV[1] control channel, ARGV[2] key prefix, ARGV[3] brokerId,
  ARGV[4..] pairs: clientId, "1" for a persistent session or "0"
  Returns, per pair, three entries: epoch, previous holder record or "",
  index version of the subscription change or 0 (none); or the error
  "BROKER_FENCED ..." (nothing written) when ARGV[3] is in `gone`.
]]
local channel, p, broker = ARGV[1], ARGV[2], ARGV[3]
if redis.call('ZSCORE', KEYS[3], broker) then
  return redis.error_reply('BROKER_FENCED ' .. broker .. ' was declared dead; claim refused')
end
local out = {}
for i = 4, #ARGV, 2 do
  local c, persistent = ARGV[i], ARGV[i + 1]
  local epoch = redis.call('INCR', KEYS[2])
  local prev = redis.call('HGET', KEYS[1], c) or ''
  redis.call('HSET', KEYS[1], c, broker .. '|' .. epoch .. '|up|' .. persistent)
  redis.call('PUBLISH', channel, cjson.encode({ v = 1, t = 'takeover', c = c, b = broker, e = epoch }))

  local will = redis.call('HGET', KEYS[4], c)
  if will then
    redis.call('HDEL', KEYS[4], c)
    redis.call('SREM', p .. 'wills:' .. string.sub(will, 1, string.find(will, '\n', 1, true) - 1), c)
  end
  redis.call('ZREM', KEYS[5], c)

  local ver = 0
  if persistent ~= '1' then
    local listed = redis.call('SREM', KEYS[6], c) == 1
    if redis.call('DEL', p .. 'subs:' .. c) == 1 or listed then
      ver = redis.call('INCR', KEYS[7])
      redis.call('PUBLISH', channel, cjson.encode({ v = 1, t = 'subs', ver = ver, c = c, op = 'clean', ch = {} }))
    end
    redis.call('DEL', p .. 'q:' .. c, p .. 'qp:' .. c, p .. 'qm:' .. c, p .. 'in:' .. c)
  end
  out[#out + 1] = epoch
  out[#out + 1] = prev
  out[#out + 1] = ver
end
return out
