-- The watchdog pass's lock, with a fencing token (only one pass at a time acts).
-- ARGV: ns, now, op ('acquire' | 'release'), lock_ms | token, min_gap_ms
--   acquire: a new token, unless a pass holds the lock or one finished less than
--            min_gap_ms ago (piled-up beat messages then cost nothing);
--   release: delete the lock only if it is still ours (compare and delete).
-- Returns the token | '' (acquire), 1 | 0 (release)
local lock = key('lock', 'watchdog')
local op = ARGV[3]
if op == 'acquire' then
  if redis.call('EXISTS', lock) == 1 or redis.call('EXISTS', lock .. ':recent') == 1 then
    return ''
  end
  local token = tostring(redis.call('INCR', key('lock', 'watchdog', 'fence')))
  redis.call('SET', lock, token, 'PX', tonumber(ARGV[4]))
  return token
end
if redis.call('GET', lock) == ARGV[4] then
  redis.call('DEL', lock)
  local gap = tonumber(ARGV[5])
  if gap > 0 then
    redis.call('SET', lock .. ':recent', '1', 'PX', gap)
  end
  return 1
end
return 0
