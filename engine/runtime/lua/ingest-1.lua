-- Appends one input to a partition log, refusing it when the backlog is full.
-- Applied entries are trimmed by commit, so the log holds only the backlog;
-- a full log means the owner is far behind or gone, and refusing (the device
-- gets no PUBACK and resends) is better than trimming unapplied inputs.
-- KEYS[1] partition log (STREAM)
-- ARGV[1] largest backlog, in entries
-- ARGV[2..] field, value pairs of the entry (entries.ts encodeEntry)
-- Returns the entry id; error "ENGINE_BACKLOG_FULL ..." when full.
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return redis.error_reply('ENGINE_BACKLOG_FULL partition log is full')
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
