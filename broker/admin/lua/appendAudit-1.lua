--[[
  Appends one audit record and caps the list, in one step.

  KEYS[1] audit  LIST of JSON records, newest first
  ARGV[1] JSON record, ARGV[2] records kept
  Returns the list length after the append.
]]
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return redis.call('LLEN', KEYS[1])
