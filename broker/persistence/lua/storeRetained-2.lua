-- Stores or deletes one retained message and its entry in the topic index
-- together, as one script: atomic like the MULTI it replaces, but it can
-- share a pipeline write with other commands (a MULTI is always its own
-- write in ioredis), which made retained stores 24% of a node's CPU when the
-- engine publishes a retained state per update (issue 4 profile).
-- KEYS[1] retained (HASH topic -> packet)   KEYS[2] retained index (ZSET)
-- ARGV[1] topic   ARGV[2] encoded packet, or '' to delete
-- Returns 1 if the hash held / now holds the topic, else 0.
if ARGV[2] == '' then
  local n = redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return n
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
