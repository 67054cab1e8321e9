--[[
  Stores a client's will under the broker holding its connection, replacing
  any earlier will of that client (whichever broker held it).

  KEYS[1] wills  HASH clientId -> brokerId .. "\n" .. encoded packet
  KEYS[2] wills:<brokerId>  SET of clientIds
  ARGV[1] clientId, ARGV[2] brokerId, ARGV[3] encoded packet, ARGV[4] key prefix
]]
local prior = redis.call('HGET', KEYS[1], ARGV[1])
if prior then
  local b = string.sub(prior, 1, string.find(prior, '\n', 1, true) - 1)
  redis.call('SREM', ARGV[4] .. 'wills:' .. b, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\n' .. ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
