-- One engine beat of a node: stay alive, renew its partition leases, take
-- free (or expired) ones it wants, give up the ones it hands over, and read
-- the lease table and the live node set. Times are Redis server time, so node
-- clocks never matter.
-- KEYS[1] leases HASH partition -> "brokerId|token|expiresAt"
-- KEYS[2] fence counter (STRING): every acquisition takes a new token
-- KEYS[3] engine alive ZSET brokerId -> last beat
-- ARGV[1] brokerId
-- ARGV[2] lease ttl, ms (also how long a silent node counts as live)
-- ARGV[3] number of wanted partitions W, then W partition numbers
-- ARGV[3+W+1..] pairs partition, token to release
-- Returns { flat lease table {partition, brokerId, token, ...} of unexpired leases, live brokerIds }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = ARGV[1]
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], now, me)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)

local function parse (v)
  if not v then return nil end
  local b, tok, exp = string.match(v, '^(.*)|(%d+)|(%d+)$')
  return b, tonumber(tok), tonumber(exp)
end

local w = tonumber(ARGV[3])
local relStart = 4 + w
for i = relStart, #ARGV, 2 do
  local b, tok = parse(redis.call('HGET', KEYS[1], ARGV[i]))
  if b == me and tok == tonumber(ARGV[i + 1]) then redis.call('HDEL', KEYS[1], ARGV[i]) end
end

local wanted = {}
for i = 4, 3 + w do wanted[ARGV[i]] = true end

local lt = {}
local flat = redis.call('HGETALL', KEYS[1])
local seen = {}
for i = 1, #flat, 2 do
  local p = flat[i]
  seen[p] = true
  local b, tok, exp = parse(flat[i + 1])
  if b == me then
    -- Renew what we hold, wanted or not: a lease is only given up by an
    -- explicit release, after this node stopped writing to the partition.
    redis.call('HSET', KEYS[1], p, me .. '|' .. tok .. '|' .. (now + ttl))
    lt[#lt + 1] = p; lt[#lt + 1] = me; lt[#lt + 1] = tostring(tok)
  elseif exp ~= nil and exp > now then
    lt[#lt + 1] = p; lt[#lt + 1] = b; lt[#lt + 1] = tostring(tok)
  elseif wanted[p] then
    local tok2 = redis.call('INCR', KEYS[2])
    redis.call('HSET', KEYS[1], p, me .. '|' .. tok2 .. '|' .. (now + ttl))
    lt[#lt + 1] = p; lt[#lt + 1] = me; lt[#lt + 1] = tostring(tok2)
  end
end
for p, _ in pairs(wanted) do
  if not seen[p] then
    local tok2 = redis.call('INCR', KEYS[2])
    redis.call('HSET', KEYS[1], p, me .. '|' .. tok2 .. '|' .. (now + ttl))
    lt[#lt + 1] = p; lt[#lt + 1] = me; lt[#lt + 1] = tostring(tok2)
  end
end
return { lt, redis.call('ZRANGE', KEYS[3], 0, -1) }
