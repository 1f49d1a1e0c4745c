-- A message arrived: is its step still waiting for it? Asked before a rate slot is
-- taken or the API is called, so stale and duplicate messages spend neither. Marks
-- how far its queue has been read (see advance_head in the prelude).
-- ARGV: ns, now, job_id, item, gen, kind ('create' | 'poll')
-- Returns {'ok'} | {'cancelling'} (a create whose job is being cancelled: the claim
-- cancels it without a call) | {'stale'} | {'gone'}
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
return {'ok'}
