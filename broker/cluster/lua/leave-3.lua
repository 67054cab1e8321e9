--[[
  A node leaving on purpose (graceful shutdown): it is no longer a member and
  has no wills left to publish.

  KEYS[1] alive, KEYS[2] nodes, KEYS[3] wills:<brokerId>
  ARGV[1] brokerId
]]
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('SCARD', KEYS[3])
