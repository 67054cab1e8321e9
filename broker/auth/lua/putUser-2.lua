--[[
  Creates or replaces a user, keeping the admin set in step, in one step.
  Refuses to demote the last admin, so the cluster always keeps one.

  KEYS[1] users   HASH username -> JSON record
  KEYS[2] admins  SET of admin usernames
  ARGV[1] username, ARGV[2] JSON record, ARGV[3] "1" if the role is admin
  Returns 1 created, 0 replaced, -1 refused (last admin).
]]
local isAdmin = redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1
if isAdmin and ARGV[3] ~= '1' and redis.call('SCARD', KEYS[2]) == 1 then return -1 end
local created = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '1' then redis.call('SADD', KEYS[2], ARGV[1]) else redis.call('SREM', KEYS[2], ARGV[1]) end
return created
