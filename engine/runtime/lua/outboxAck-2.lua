-- Removes published effect batches from a partition outbox, if the caller
-- still holds the partition: a node that lost the lease must not remove the
-- new owner's batches.
-- KEYS[1] leases HASH
-- KEYS[2] partition outbox (LIST, oldest first)
-- ARGV[1] partition, ARGV[2] fencing token, ARGV[3] number of batches
-- Returns 1, or error "ENGINE_FENCED ..."
local l = redis.call('HGET', KEYS[1], ARGV[1])
local tok = l and string.match(l, '|(%d+)|%d+$')
if tok ~= ARGV[2] then return redis.error_reply('ENGINE_FENCED lease lost') end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[3]), -1)
return 1
