-- The watchdog found a step overdue in `due`: its message was lost (a killed
-- worker, a Redis restart) or is merely late. Bumping gen makes any late copy
-- stale, so re-driving never runs two chains side by side.
-- ARGV: ns, now, job_id, item, lease_s, queue_busy(0|1), retention
--   queue_busy: the step's queue has a backlog and the step is not yet later than
--   the visibility timeout, so its message is probably only late: postpone rather
--   than add a duplicate to an overloaded queue.
-- Returns {'poll', gen, remote_id} | {'create', gen} | {'postponed'} |
--         {'unknown'} | {'cleaned'}
local job_id, item = ARGV[3], ARGV[4]
local lease, queue_busy, retention = tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7]
local job_key = key('job', job_id)
local member = member_of(item, job_id)
local doc = load_doc(job_key)
local step = doc and step_of(doc, item)
if not step then
  redis.call('ZREM', key('due'), member)
  redis.call('SREM', key('inflight'), member)
  return {'cleaned'}
end
local old_state = doc.state
-- Postponing leaves the step's due time alone: if the message runs, it moves it; if
-- it was lost, the step stays overdue and the watchdog stops postponing once it is
-- later than the broker would have redelivered it.
if queue_busy and (step.state == 'running' or (step.state == 'pending' and step.queued)) then
  return {'postponed'}
end
if step.state == 'running' then
  step.gen = step.gen + 1
  redis.call('ZADD', key('due'), NOW + lease, member)
  redis.call('SET', job_key, cjson.encode(doc))
  return {'poll', step.gen, step.remote_id}
elseif step.state == 'pending' then
  step.gen = step.gen + 1
  step.queued = true
  step.parked = nil
  redis.call('ZADD', key('due'), NOW + lease, member)
  redis.call('SET', job_key, cjson.encode(doc))
  return {'create', step.gen}
elseif step.state == 'submitting' then
  -- The worker that sent the create is gone and its answer was never stored.
  step.state = 'unknown'
  step.error = {kind = 'lost_worker', msg = 'the worker stopped after sending the create '
    .. 'and before storing its answer: the task may exist and be billed. '
    .. 'Check it, then `clonequeue retry BATCH --unknown` to send it again'}
  release_slot(item, job_id)
  redis.call('ZREM', key('due'), member)
  commit(job_key, doc, old_state, retention)
  return {'unknown'}
end
redis.call('ZREM', key('due'), member)
return {'cleaned'}
