-- Stores or deletes several retained messages, each together with its entry
-- in the topic index, in the order given (a later pair for the same topic
-- wins). One call carries every retained store of an event-loop tick
-- (retained-writes.ts): the engine publishes a retained state per update, and
-- one script call per message was a Command, an argument copy and a reply per
-- message in the node (issue 4 profile).
-- KEYS[1] retained (HASH topic -> packet)   KEYS[2] retained index (ZSET)
-- ARGV pairs: topic, encoded packet ('' = delete)
-- Returns, per pair, 1 if the hash held / now holds the topic, else 0.
local out = {}
for i = 1, #ARGV, 2 do
  local topic, value = ARGV[i], ARGV[i + 1]
  if value == '' then
    out[#out + 1] = redis.call('HDEL', KEYS[1], topic)
    redis.call('ZREM', KEYS[2], topic)
  else
    redis.call('HSET', KEYS[1], topic, value)
    redis.call('ZADD', KEYS[2], 0, topic)
    out[#out + 1] = 1
  end
end
return out
