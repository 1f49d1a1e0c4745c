-- A create got no task: decide what the step does next.
--   retry    transient error (5xx, 429, network before sending): pending again
--   blocked  balance or token problem: pause the fleet, park the step
--   rejected the API said no for good: failed
--   unknown  sent but unanswered: unknown (never re-sent automatically)
--   paced    our own rate limit had no slot free: pending again, no attempt spent
--            and no error recorded (nothing was sent)
-- ARGV: ns, now, job_id, item, gen, outcome, error_json, retry_at, queued(0|1),
--       max_attempts, pause_json, cap, grace_s, retention, unknown_pause_after
-- An `unknown` is counted fleet-wide (`unknown_streak`, cleared by any create that gets
-- its task; one claimed before the latest create that got its task does not count):
-- unknown_pause_after of them in a row pause creates ('unknown_answers'),
-- as an API that answers every create unreadably (a wrong base URL serving a web
-- page, a proxy's error page) left a whole batch unknown, each maybe billed.
-- Returns {result, new_gen, pause, unparked...} with result 'retry' | 'parked' |
-- 'failed' | 'unknown' and pause the reason of an unknown_answers pause this release
-- set (else ''), or {'stale'} | {'gone'}.
local job_id, item, gen = ARGV[3], ARGV[4], tonumber(ARGV[5])
local outcome, err = ARGV[6], cjson.decode(ARGV[7])
local retry_at, queued, max_attempts = tonumber(ARGV[8]), ARGV[9] == '1', tonumber(ARGV[10])
local pause_json, cap, grace, retention = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14]
local doc, step, job_key, reply = open_step(job_id, item, gen, {submitting = true})
if reply then
  return reply
end
local member = member_of(item, job_id)
local old_state = doc.state
release_slot(item, job_id)
if outcome ~= 'unknown' then
  -- nothing was created, so nothing will be billed
  redis.call('HINCRBY', key('stats'), 'chars_submitted', -(step.chars or 0))
end
if outcome == 'paced' then
  step.attempts = step.attempts - 1
  outcome = 'retry'
else
  step.error = err
end
local result = outcome
local paused = ''
local tries = step.attempts - (step.attempts_before or 0) -- since the last `retry`
if outcome == 'retry' and tries >= max_attempts then
  err.msg = 'gave up after ' .. tries .. ' attempts; last error: ' .. err.msg
  err.kind = 'gave_up' -- its last error was transient (rate_limited, unavailable)
  outcome = 'rejected'
end
if outcome == 'retry' then
  step.state = 'pending'
  step.gen = gen + 1
  step.queued_at = queued and NOW or nil
  redis.call('ZADD', key('due'), retry_at, member)
elseif outcome == 'blocked' then
  step.state = 'pending'
  step.gen = gen + 1
  step.attempts = step.attempts - 1
  redis.call('SET', key('paused'), pause_json)
  park(step, item, job_id)
  result = 'parked'
elseif outcome == 'unknown' then
  step.state = 'unknown'
  redis.call('ZREM', key('due'), member)
  local pause_after = tonumber(ARGV[15]) or 0
  -- "In a row" by when creates were sent, not by when their answers ended: a slow
  -- create times out 30 s after it went, so the last slow ones of a batch (or of a
  -- cancel) ended one after another with no success between them, though creates sent
  -- after each had got their tasks, and paused a healthy fleet (QA pass).
  local last_ok = tonumber(redis.call('GET', key('unknown_streak_ok'))) or 0
  local in_a_row = (tonumber(step.claimed_at) or NOW) >= last_ok
  if pause_after > 0 and in_a_row then
    local streak = redis.call('INCR', key('unknown_streak'))
    redis.call('EXPIRE', key('unknown_streak'), 86400)
    local current = redis.call('GET', key('paused'))
    local ours = current and cjson.decode(current).kind == 'unknown_answers'
    -- set, or set again: a probe that also ended unknown restarts the probe interval
    -- (as a blocked probe does); probes had gone out at the watchdog's pace
    if streak >= pause_after and (not current or ours) then
      -- answers that are web pages or not the envelope mean the wrong address more
      -- often than a broken API: name the setting (QA pass)
      paused = string.format('%d creates in a row were sent and got no readable answer '
        .. '(the last: %s): each may exist and be billed, so creates pause; check '
        .. 'CLONEQUEUE_API_BASE_URL (a proxy or a web page answers?) and the provider; one '
        .. 'is tried every CLONEQUEUE_PAUSE_PROBE_INTERVAL_S, or `clonequeue resume` lifts it',
        streak, tostring(err.msg))
      redis.call('SET', key('paused'), cjson.encode({kind = 'unknown_answers', since = NOW,
        reason = paused}))
    end
  end
else
  step.state = 'failed'
  redis.call('ZREM', key('due'), member)
  result = 'failed'
end
commit(job_key, doc, old_state, retention)
local out = {result, step.gen, paused}
for _, entry in ipairs(unpark(cap, grace, 50)) do
  out[#out + 1] = entry
end
return out
