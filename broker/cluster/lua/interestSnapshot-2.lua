--[[
  One node's whole interest set and its version, read atomically.
  KEYS[1] interest:<brokerId>, KEYS[2] interestseq:<brokerId>
  Returns { version, { filters } }
]]
return { tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('SMEMBERS', KEYS[1]) }
