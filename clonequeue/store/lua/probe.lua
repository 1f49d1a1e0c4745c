-- While the fleet is paused for balance, the token or unknown answers, let one parked step
-- through every interval as a probe: its success lifts the pause.
-- ARGV: ns, now, interval_s, grace_s
-- Returns {entry} (one 'gen|item|job' to dispatch) or {}
local interval, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local paused = redis.call('GET', key('paused'))
if not paused then
  return {}
end
local pause = cjson.decode(paused)
local probed = pause.kind == 'balance' or pause.kind == 'auth' or pause.kind == 'unknown_answers'
if not probed or NOW - (tonumber(pause.since) or 0) < interval then
  return {}
end
if redis.call('EXISTS', key('probe')) == 1 then
  return {}
end
for _, which in ipairs({'audio', 'clone'}) do
  local popped = redis.call('ZPOPMIN', key('parked', which), 1)
  if #popped > 0 then
    local entry = popped[1]
    local member = string.sub(entry, string.find(entry, '|', 1, true) + 1)
    redis.call('SET', key('probe'), member, 'EX', math.ceil(interval))
    redis.call('ZADD', key('due'), NOW + grace, member)
    return {entry}
  end
end
return {}
