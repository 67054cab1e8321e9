--[[
  Adds or removes one client's stored subscriptions and announces the change,
  in one atomic step, with the new index version.

  KEYS[1] subs:<clientId>   HASH filter -> json
  KEYS[2] subclients        SET
  KEYS[3] subver            counter
  ARGV[1] clientId
  ARGV[2] control channel
  ARGV[3] op: "add" | "rm" | "clean"
  ARGV[4..] add: filter, json, filter, json ...; rm: filter, filter ...
  Returns the new index version. Every node applies versions in order and
  resyncs from a snapshot when it sees a gap (see persistence/subscriptions.ts).
]]
local op = ARGV[3]
local changes = {}
if op == 'add' then
  for i = 4, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    changes[#changes + 1] = { ARGV[i], ARGV[i + 1] }
  end
  redis.call('SADD', KEYS[2], ARGV[1])
elseif op == 'rm' then
  for i = 4, #ARGV do
    redis.call('HDEL', KEYS[1], ARGV[i])
    changes[#changes + 1] = ARGV[i]
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
else
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[1])
end
local ver = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[2], cjson.encode({ v = 1, t = 'subs', ver = ver, c = ARGV[1], op = op, ch = changes }))
return ver
