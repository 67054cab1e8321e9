--[[
  Removes and returns a client's will. With a brokerId, only if that broker
  still holds it: this is how a survivor claims a dead node's will exactly
  once, and never one replaced by a reconnect elsewhere.

  KEYS[1] wills
  ARGV[1] clientId, ARGV[2] brokerId or "", ARGV[3] key prefix
  Returns brokerId .. "\n" .. encoded packet, or nil.
]]
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return nil end
local b = string.sub(rec, 1, string.find(rec, '\n', 1, true) - 1)
if ARGV[2] ~= '' and ARGV[2] ~= b then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', ARGV[3] .. 'wills:' .. b, ARGV[1])
return rec
