--[[
  Stores a client's will under the broker holding its connection, replacing
  any earlier will of that client (whichever broker held it).

  A broker the cluster declared dead (in `gone`) is refused: a will stored by
  it after the cut would replace the will of the client's live connection
  elsewhere, and sit under a broker whose wills nobody publishes any more.

  KEYS[1] wills  HASH clientId -> brokerId .. "\n" .. encoded packet
  KEYS[2] wills:<brokerId>  SET of clientIds
  KEYS[3] gone   ZSET brokerId -> when declared dead
  ARGV[1] clientId, ARGV[2] brokerId, ARGV[3] encoded packet, ARGV[4] key prefix
  Returns 1, or the error "BROKER_FENCED ..." (nothing written) when ARGV[2] is in `gone`.
]]
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then
  return redis.error_reply('BROKER_FENCED ' .. ARGV[2] .. ' was declared dead; will refused')
end
local prior = redis.call('HGET', KEYS[1], ARGV[1])
if prior then
  local b = string.sub(prior, 1, string.find(prior, '\n', 1, true) - 1)
  redis.call('SREM', ARGV[4] .. 'wills:' .. b, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\n' .. ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
