-- Appends a batch of inputs (the writes of one event-loop turn, over any
-- partitions) to their partition logs in the given order, refusing each one
-- whose log is full. One call per turn instead of one per write: the script
-- call, not the XADD, is most of the cost.
-- Applied entries are trimmed by commit, so a log holds only its backlog; a
-- full log means the owner is far behind or gone, and refusing (the device
-- gets no PUBACK and resends) is better than trimming unapplied inputs.
-- KEYS[1..] partition logs (STREAM)
-- ARGV[1] largest backlog, in entries
-- ARGV[2] W: stream field names and values per entry (14 in format 1, 2 in format 2; formats.ts)
-- ARGV[3..] per entry: key index, then its W field names and values
-- Returns the positions (1-based, in call order) of the entries refused because
-- their log was full: usually none. Not the ids of the others: nobody needs
-- them, and they were most of the reply.
local max = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local len = {}
local out = {}
local pos = 0
for i = 3, #ARGV, w + 1 do
  pos = pos + 1
  local ki = tonumber(ARGV[i])
  local key = KEYS[ki]
  local n = len[ki]
  if n == nil then n = redis.call('XLEN', key) end
  if n >= max then
    out[#out + 1] = pos
  else
    redis.call('XADD', key, '*', unpack(ARGV, i + 1, i + w))
    n = n + 1
  end
  len[ki] = n
end
return out
