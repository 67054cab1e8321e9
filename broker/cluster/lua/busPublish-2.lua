-- Appends a batch to the target node's replay log and publishes it on the
-- target's bus channel, prefixed with its stream id and a newline, in one
-- step: a receiver that saw id N on the channel finds everything after N in
-- the log. The log expires if its reader stops trimming it (a dead node).
-- KEYS[1] replay log (stream)   KEYS[2] bus channel
-- ARGV[1] batch                 ARGV[2] log lifetime, ms
-- Returns the number of receivers of the PUBLISH.
local id = redis.call('XADD', KEYS[1], '*', 'b', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('PUBLISH', KEYS[2], id .. '\n' .. ARGV[1])
