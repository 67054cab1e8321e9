--[[
  Adds or removes topic filters of one node's interest set (filters that have
  subscribers on that node) and announces the change with the set's new
  version, so the other nodes route publishes only where they are needed.

  KEYS[1] interest:<brokerId>     SET of filters
  KEYS[2] interestseq:<brokerId>  counter
  ARGV[1] brokerId, ARGV[2] control channel, ARGV[3] "add" | "rm", ARGV[4..] filters
  Returns the new version. Receivers apply versions in order and re-read the
  whole set (interestSnapshot) on a gap.
]]
local filters = {}
for i = 4, #ARGV do
  filters[#filters + 1] = ARGV[i]
  if ARGV[3] == 'add' then redis.call('SADD', KEYS[1], ARGV[i]) else redis.call('SREM', KEYS[1], ARGV[i]) end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], cjson.encode({ v = 1, t = 'interest', b = ARGV[1], seq = seq, op = ARGV[3], f = filters }))
return seq
