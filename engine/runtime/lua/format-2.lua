-- The stored format engine nodes write (engine/runtime/formats.ts), read on
-- every engine beat. `eng:format` is the cluster's switch: an operator sets
-- it once every node runs a release that reads the newer format. A cluster on
-- which no engine ever took a lease (no fencing token yet) has no older node
-- to protect, so it starts on the caller's newest format.
-- KEYS[1] format STRING, KEYS[2] fencing token counter STRING
-- ARGV[1] the caller's newest format
-- Returns the format to write (the caller writes at most its newest).
local f = redis.call('GET', KEYS[1])
if f then return tonumber(f) end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
  return tonumber(ARGV[1])
end
return 1
