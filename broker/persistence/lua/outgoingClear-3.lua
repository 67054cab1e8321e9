--[[
  Removes the queued packet acknowledged with a messageId.

  KEYS[1] q:<clientId>, KEYS[2] qp:<clientId>, KEYS[3] qm:<clientId>
  ARGV[1] messageId
  Returns the encoded packet, or nil if none is waiting for that id.
]]
local pkey = redis.call('HGET', KEYS[3], ARGV[1])
if not pkey then return nil end
local enc = redis.call('HGET', KEYS[2], pkey)
redis.call('HDEL', KEYS[3], ARGV[1], '#' .. pkey)
redis.call('HDEL', KEYS[2], pkey)
redis.call('LREM', KEYS[1], 1, pkey)
return enc
