--[[
  Adds or removes topic filters of one node's interest set (filters that have
  subscribers on that node) and announces the change with the set's new
  version, so the other nodes route publishes only where they are needed.

  A node the cluster declared dead (in `gone`) is refused: the reaper deleted
  its interest set, and a change replayed from the cut would re-create it
  for a node nobody routes to any more (and never reaps again).

  KEYS[1] interest:<brokerId>     SET of filters
  KEYS[2] interestseq:<brokerId>  counter
  KEYS[3] gone                    ZSET brokerId -> when declared dead
  ARGV[1] brokerId, ARGV[2] control channel, ARGV[3] "add" | "rm", ARGV[4..] filters
  Returns the new version, or the error "BROKER_FENCED ..." (nothing
  written) when ARGV[1] is in `gone`. Receivers apply versions in order and
  re-read the whole set (interestSnapshot) on a gap.
]]
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  return redis.error_reply('BROKER_FENCED ' .. ARGV[1] .. ' was declared dead; interest change refused')
end
local filters = {}
for i = 4, #ARGV do
  filters[#filters + 1] = ARGV[i]
  if ARGV[3] == 'add' then redis.call('SADD', KEYS[1], ARGV[i]) else redis.call('SREM', KEYS[1], ARGV[i]) end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], cjson.encode({ v = 1, t = 'interest', b = ARGV[1], seq = seq, op = ARGV[3], f = filters }))
return seq
