--[[
  A node has closed a client's connection. Because this script runs on the
  same Redis connection as every earlier write for that client, its execution
  proves those writes (acknowledgements, queue updates) are applied: a new
  holder waiting on the notice may now read the session.

  Not refused for a broker in `gone` (unlike claimSessions): it changes only
  the caller's own record, matched by brokerId and epoch, so it never touches
  a live holder; refused, a dead incarnation's clean-session entry would stay
  in `owners` for good. Its notice is still true: that connection is over.

  KEYS[1] owners
  ARGV[1] clientId, ARGV[2] brokerId, ARGV[3] epoch, ARGV[4] control channel, ARGV[5] "persistent" or ""
  Returns 1 if this connection was still the holder.
]]
local mine = ARGV[2] .. '|' .. ARGV[3] .. '|up|' .. (ARGV[5] == 'persistent' and '1' or '0')
local held = redis.call('HGET', KEYS[1], ARGV[1]) == mine
if held then
  if ARGV[5] == 'persistent' then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|released|1')
  else
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end
redis.call('PUBLISH', ARGV[4], cjson.encode({ v = 1, t = 'released', c = ARGV[1], e = tonumber(ARGV[3]) }))
return held and 1 or 0
