--[[
  Reads the whole subscription index and its version atomically, so a node can
  rebuild its in-memory index and continue from exactly that version.

  KEYS[1] subclients  SET
  KEYS[2] subver      counter
  ARGV[1] key prefix of subs:<clientId> hashes (same hash tag)
  Returns { version, clientId, { filter, json, ... }, clientId, {...}, ... }
]]
local out = { tonumber(redis.call('GET', KEYS[2]) or '0') }
for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = c
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. c)
end
return out
