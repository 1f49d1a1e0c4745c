-- The watchdog found a step overdue in `due`: its message was lost (a killed
-- worker, a Redis crash, a task that raised before its claim) or is merely late.
-- Bumping gen makes any late copy stale, so re-driving never runs two chains side
-- by side.
-- ARGV: ns, now, job_id, item, lease_s, busy_queues, retention, token, grace_s, slack_s
--   busy_queues: ',submit,poll,' — the queues with a backlog. A backlog postpones a
--   re-drive only while the step's message can still be in the queue it waits in:
--   no worker has yet taken a message queued more than slack_s after it (FIFO).
--   token: the watchdog pass's fencing token; a pass whose lock expired (another
--   pass holds it now) changes nothing.
-- Returns {'poll', gen, remote_id} | {'create', gen} | {'postponed'} |
--         {'unknown'} | {'cleaned'} | {'ontime'} | {'fenced'}
local job_id, item = ARGV[3], ARGV[4]
local lease, busy, retention = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local token, grace, slack = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
if redis.call('GET', key('lock', 'watchdog')) ~= token then
  return {'fenced'}
end
local job_key = key('job', job_id)
local member = member_of(item, job_id)
local due = tonumber(redis.call('ZSCORE', key('due'), member))
if not due or due > NOW - grace then
  return {'ontime'} -- moved since the pass read it (another pass, or its message ran)
end
local doc = load_doc(job_key)
local step = doc and step_of(doc, item)
if not step then
  redis.call('ZREM', key('due'), member)
  redis.call('SREM', key('inflight'), member)
  return {'cleaned'}
end
local old_state = doc.state
local outstanding = step.state == 'running' or (step.state == 'pending'
  and (step.queued_at or (item == 'c' and step.gen == 0)))
if outstanding and string.find(busy, ',' .. queue_of(item, step) .. ',', 1, true) then
  local head = tonumber(redis.call('HGET', key('queue_head'), queue_of(item, step))) or 0
  if head < queued_at(doc, step) + slack then
    -- Still possibly in its queue: leave the entry alone. If the message runs, it
    -- moves it; if it was lost, the head passes it and the next pass re-drives it.
    return {'postponed'}
  end
end
if step.state == 'running' then
  step.gen = step.gen + 1
  step.queued_at = NOW
  redis.call('ZADD', key('due'), NOW + lease, member)
  redis.call('SET', job_key, cjson.encode(doc))
  return {'poll', step.gen, step.remote_id}
elseif step.state == 'pending' then
  step.gen = step.gen + 1
  step.queued_at = NOW
  step.parked = nil
  redis.call('ZADD', key('due'), NOW + lease, member)
  redis.call('SET', job_key, cjson.encode(doc))
  return {'create', step.gen}
elseif step.state == 'submitting' then
  -- The worker that sent the create is gone, or frozen (a stopped process, a paused
  -- VM), and its answer was never stored. A late answer is still taken
  -- (record_created.lua); `at` lets retry_job.lua wait for one before sending again.
  step.state = 'unknown'
  step.error = {kind = 'lost_worker', at = NOW, msg = 'the worker that sent the create did '
    .. 'not store its answer within its lease (it died, or is frozen: a stopped process, a '
    .. 'paused VM; its answer is still taken if it comes): the task may exist and be billed. '
    .. 'Check it, then `clonequeue retry ' .. tostring(doc.batch) .. ' --unknown` sends it '
    .. 'again (once CLONEQUEUE_UNKNOWN_SETTLE_S has passed, or with --force)'}
  release_slot(item, job_id)
  redis.call('ZREM', key('due'), member)
  commit(job_key, doc, old_state, retention)
  return {'unknown'}
end
redis.call('ZREM', key('due'), member)
return {'cleaned'}
