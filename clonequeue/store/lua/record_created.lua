-- The API accepted a create and gave its task id: the step is running. Also
-- accepted when the watchdog already called it unknown (the answer came late).
-- A success proves the fleet can create again, so a balance/auth/unknown-answers pause
-- lifts, and the run of unknown creates (release_create.lua) ends.
-- ARGV: ns, now, job_id, item, gen, remote_id, next_due, deadline_s, retention
-- Returns {'ok', new_gen, resumed(0|1), learned_first_poll_s or ''} | {'stale'} | {'gone'}
local job_id, item, gen = ARGV[3], ARGV[4], tonumber(ARGV[5])
local remote_id, next_due = ARGV[6], tonumber(ARGV[7])
local deadline_s, retention = tonumber(ARGV[8]), ARGV[9]
local doc, step, job_key, reply = open_step(job_id, item, gen, {submitting = true, unknown = true})
if reply then
  local moved = reply[1] == 'stale' and load_doc(job_key)
  if moved and #(moved.untracked or {}) < 20 then
    -- the step moved on (a forced retry sent it again) and this create got its task
    -- anyway: paid, so kept on the record (`untracked_tasks`), not only in a log line
    moved.untracked = moved.untracked or {}
    table.insert(moved.untracked, {item = item, task = remote_id, at = NOW})
    redis.call('SET', job_key, cjson.encode(moved), 'KEEPTTL')
  end
  return reply
end
local member = member_of(item, job_id)
local old_state = doc.state
-- the latest claim whose create got its task: unknowns claimed before it are not "in a
-- row" with the ones after (release_create.lua)
local claimed_at = tonumber(step.claimed_at)
if claimed_at and claimed_at > (tonumber(redis.call('GET', key('unknown_streak_ok'))) or 0) then
  redis.call('SET', key('unknown_streak_ok'), tostring(claimed_at), 'EX', 86400)
end
if step.state == 'unknown' then
  redis.call('SADD', key('inflight'), member)
end
step.state = 'running'
step.remote_id = remote_id
step.gen = gen + 1
step.submitted_at = NOW
step.polls = 0
step.queued_at = NOW -- the first poll's message
step.claimed_at = nil -- the claim is over: submitted_at says when the task began
step.claim = nil
step.running_at = nil
step.error = nil
if item == 'c' then
  if not doc.deadline then
    doc.deadline = NOW + deadline_s
  end
else
  doc.clone.activated = true
end
redis.call('ZADD', key('due'), next_due, member)
local resumed = 0
redis.call('DEL', key('unknown_streak'))
local paused = redis.call('GET', key('paused'))
if paused then
  local kind = cjson.decode(paused).kind
  if kind == 'balance' or kind == 'auth' or kind == 'unknown_answers' then
    redis.call('DEL', key('paused'))
    resumed = 1
  end
end
commit(job_key, doc, old_state, retention)
local learned = redis.call('HGET', key('batch', doc.batch), first_poll_field(item)) or ''
return {'ok', step.gen, resumed, learned}
