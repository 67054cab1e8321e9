--[[
  Deletes a user and its admin-set entry in one step; never the last admin.

  KEYS[1] users   HASH username -> JSON record
  KEYS[2] admins  SET of admin usernames
  ARGV[1] username
  Returns 1 deleted, 0 absent, -1 refused (last admin).
]]
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 and redis.call('SCARD', KEYS[2]) == 1 then return -1 end
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
