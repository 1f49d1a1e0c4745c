-- A create message arrived: take the step from pending to submitting, unless the
-- fleet is paused, all slots are taken or the budget is spent (then park it).
-- ARGV: ns, now, job_id, item, gen, lease_s, cap, budget_chars, retention, token
-- Returns {'ok', request_json, model_id, clone_completed_at, activated, attempts, batch}
--      or {'parked', reason} | {'cancelled'} | {'stale'} | {'gone'}
--
-- `token` names this claim. The same claim run again (its reply lost to a failover:
-- the script ran on the old master, the replica promoted had its write) finds the
-- step `submitting` under its own token and gets 'ok' again; answered 'stale', the
-- worker dropped a create it had never sent, and the step ended `unknown` (QA pass:
-- 10 at once after SENTINEL FAILOVER).
local job_id, item, gen = ARGV[3], ARGV[4], tonumber(ARGV[5])
local lease, cap, budget, retention = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local token = ARGV[10] or ''
local doc, step, job_key, reply = open_step(job_id, item, gen, {pending = true, submitting = true})
if reply then
  return reply
end

local function claimed()
  local model_id, completed_at, activated = '', '0', '0'
  if item ~= 'c' then
    model_id = doc.clone.model_id or ''
    completed_at = tostring(doc.clone.completed_at or 0)
    activated = doc.clone.activated and '1' or '0'
  end
  -- attempts since the last `retry` (the backoff's count), not the job's whole count
  return {'ok', cjson.encode(step.request), model_id, completed_at, activated,
          step.attempts - (step.attempts_before or 0), doc.batch}
end

if step.state == 'submitting' then
  if token ~= '' and step.claim == token then
    return claimed()
  end
  return {'stale'}
end
local member = member_of(item, job_id)
local old_state = doc.state
if doc.cancel_requested then
  step.state = 'cancelled'
  step.parked = nil
  redis.call('ZREM', key('due'), member)
  commit(job_key, doc, old_state, retention)
  return {'cancelled'}
end

local probe = redis.call('GET', key('probe'))
local paused = redis.call('GET', key('paused'))
local blocked = nil
if paused and probe ~= member then
  blocked = 'paused'
elseif cap > 0 and redis.call('SCARD', key('inflight')) >= cap then
  blocked = 'capacity'
elseif budget > 0 then
  local stats = redis.call('HMGET', key('stats'), 'chars_submitted', 'chars_refunded')
  local spent = (tonumber(stats[1]) or 0) - (tonumber(stats[2]) or 0)
  if spent + (step.chars or 0) > budget then
    blocked = 'budget'
    redis.call('SET', key('paused'), cjson.encode({
      kind = 'budget', since = NOW,
      reason = 'the budget of ' .. budget .. ' characters is reached; raise '
        .. 'CLONEQUEUE_BUDGET_CHARS and run `clonequeue resume`'}))
  end
end
if blocked then
  park(step, item, job_id)
  redis.call('SET', job_key, cjson.encode(doc))
  return {'parked', blocked}
end

if probe == member then
  redis.call('DEL', key('probe'))
end
step.state = 'submitting'
step.attempts = (step.attempts or 0) + 1
step.claimed_at = NOW
step.claim = token
step.parked = nil
step.queued_at = nil
redis.call('SADD', key('inflight'), member)
redis.call('ZADD', key('due'), NOW + lease, member)
redis.call('HINCRBY', key('stats'), 'chars_submitted', step.chars or 0)
commit(job_key, doc, old_state, retention)
return claimed()
