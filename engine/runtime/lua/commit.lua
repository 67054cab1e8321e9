-- Commits one processed batch of a partition, all or nothing: thing states,
-- the checkpoint, history appends, the alert index, the effect outbox and
-- rule writes to other partitions' logs. Refused unless the caller holds the
-- partition lease with this fencing token and the checkpoint is where the
-- batch started, so a node that lost the partition (paused, cut off) or a
-- batch computed from a stale position can never write.
-- Variable key count (one per history stream and feedback log):
-- KEYS[1] leases HASH, KEYS[2] checkpoints HASH, KEYS[3] partition state HASH,
-- KEYS[4] partition outbox LIST, KEYS[5] partition log STREAM, KEYS[6] alerts HASH,
-- KEYS[7..] history streams, then partition logs receiving rule writes
-- ARGV[1] partition, ARGV[2] token, ARGV[3] expected checkpoint ('' = none), ARGV[4] new checkpoint
-- ARGV[5] S state fields, ARGV[6] A alerts, ARGV[7] H history appends, ARGV[8] F feedback entries
-- ARGV[9] outbox batch ('' = nothing to publish; formats.ts encodeOutbox)
-- ARGV[10] history max length, ARGV[11] history min id ('' = no age cap)
-- ARGV[12] R state fields to delete
-- ARGV[13] W: stream field names and values per feedback entry (14 in format 1, 2 in format 2; formats.ts)
-- then S x (field, JSON): "<thingId>" = the state without its properties,
-- "<thingId>/<property>" = one property (only the changed ones are sent),
-- R x field, A x (field, record JSON),
-- H x (key index, id "<ts>-*", value JSON), F x (key index, W entry field names and values)
-- Returns 1; errors "ENGINE_FENCED ..." / "ENGINE_CHECKPOINT_MOVED ..."
local l = redis.call('HGET', KEYS[1], ARGV[1])
local tok = l and string.match(l, '|(%d+)|%d+$')
if tok ~= ARGV[2] then return redis.error_reply('ENGINE_FENCED lease lost') end
local ck = redis.call('HGET', KEYS[2], ARGV[1]) or ''
if ck ~= ARGV[3] then return redis.error_reply('ENGINE_CHECKPOINT_MOVED at ' .. ck) end

local s, a, h, f, r = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[12])
local w = tonumber(ARGV[13])
local i = 14
-- In chunks: unpack() is limited to a few thousand values.
local function chunked (cmd, key, from, count, width)
  local step = 1000 * width
  local last = from + count * width - 1
  for j = from, last, step do
    redis.call(cmd, key, unpack(ARGV, j, math.min(j + step - 1, last)))
  end
end
if s > 0 then
  chunked('HSET', KEYS[3], i, s, 2)
  i = i + 2 * s
end
if r > 0 then
  chunked('HDEL', KEYS[3], i, r, 1)
  i = i + r
end
if a > 0 then
  redis.call('HSET', KEYS[6], unpack(ARGV, i, i + 2 * a - 1))
  i = i + 2 * a
end
local maxlen = ARGV[10]
local minid = ARGV[11]
for _ = 1, h do
  local key = KEYS[tonumber(ARGV[i])]
  -- Value timestamps never go back for a property (stale writes are
  -- refused), but a state reset can: fall back to an arrival-time id.
  local ok = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, ARGV[i + 1], 'v', ARGV[i + 2])
  if type(ok) == 'table' and ok.err then redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'v', ARGV[i + 2]) end
  if minid ~= '' then redis.call('XTRIM', key, 'MINID', '~', minid) end
  i = i + 3
end
for _ = 1, f do
  local key = KEYS[tonumber(ARGV[i])]
  redis.call('XADD', key, '*', unpack(ARGV, i + 1, i + w))
  i = i + w + 1
end
if ARGV[9] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[9]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
-- Applied entries are no longer needed: the log keeps only the backlog.
redis.call('XTRIM', KEYS[5], 'MINID', ARGV[4])
return 1
