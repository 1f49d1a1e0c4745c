-- A message arrived: is its step still waiting for it? Asked before a rate slot is
-- taken or the API is called, so stale and duplicate messages spend neither. Marks
-- how far its queue has been read (see advance_head in the prelude).
-- ARGV: ns, now, job_id, item, gen, kind ('create' | 'poll')
-- Returns {'ok'} | {'cancelling'} (a create whose job is being cancelled: the claim
-- cancels it without a call) | {'stale'} | {'gone'}; a poll's 'ok' also carries its
-- remote task's age (s, or '' if unknown) and the batch's learned first-poll delay
-- (s, or '') as strings, so the worker can tell a poll that is likely early.
local job_id, item, gen, kind = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local states = {pending = true}
if kind == 'poll' then
  states = {running = true}
end
local doc, step, _, reply = open_step(job_id, item, gen, states)
if reply then
  return reply
end
advance_head(doc, step, item)
if kind == 'create' and doc.cancel_requested then
  return {'cancelling'}
end
if kind == 'poll' then
  local age = step.submitted_at and tostring(NOW - step.submitted_at) or ''
  local learned = redis.call('HGET', key('batch', doc.batch), first_poll_field(item)) or ''
  return {'ok', age, learned}
end
return {'ok'}
