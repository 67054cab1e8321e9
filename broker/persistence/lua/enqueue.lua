--[[
  Appends one packet to the outgoing queues of several clients, capping each
  queue (drop-oldest). Idempotent: a packet key already queued for a client is
  not queued again, so a timed-out call can be retried safely.

  KEYS[3i-2] q:<clientId>   LIST of packet keys
  KEYS[3i-1] qp:<clientId>  HASH packet key -> encoded packet
  KEYS[3i]   qm:<clientId>  HASH messageId <-> packet key
  ARGV[1] packet key, ARGV[2] queue cap, ARGV[2+i] encoded packet for client i
  Returns the number of packets dropped by the cap.
]]
local pkey = ARGV[1]
local cap = tonumber(ARGV[2])
local dropped = 0
for i = 1, #KEYS / 3 do
  local q, qp, qm = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('HSETNX', qp, pkey, ARGV[2 + i]) == 1 then
    redis.call('RPUSH', q, pkey)
    while redis.call('LLEN', q) > cap do
      local old = redis.call('LPOP', q)
      redis.call('HDEL', qp, old)
      local mid = redis.call('HGET', qm, '#' .. old)
      if mid then redis.call('HDEL', qm, mid, '#' .. old) end
      dropped = dropped + 1
    end
  end
end
return dropped
