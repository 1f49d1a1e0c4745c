-- Cancel a job: steps not yet sent are cancelled; a clone already sent finishes
-- but starts no production audio. Finished jobs are left alone.
-- ARGV: ns, now, job_id, retention, by (who asked: kept with the time in doc.cancelled)
-- Returns {'cancelled'} | {'requested'} | {'skipped', state} | {'gone'}
local job_id, retention = ARGV[3], ARGV[4]
local job_key = key('job', job_id)
local doc = load_doc(job_key)
if not doc then
  return {'gone'}
end
local old_state = doc.state
if TERMINAL[old_state] then
  return {'skipped', old_state}
end

local function cancel(step, item)
  local member = member_of(item, job_id)
  redis.call('ZREM', key('due'), member)
  redis.call('ZREM', key('parked', item == 'c' and 'clone' or 'audio'), step.gen .. '|' .. member)
  step.state = 'cancelled'
  step.parked = nil
  step.queued_at = nil
end

doc.cancel_requested = true
if not doc.cancelled then
  doc.cancelled = {by = ARGV[5] or '', at = tonumber(ARGV[2])}
end
if doc.clone.state == 'pending' then
  cancel(doc.clone, 'c')
end
for i, audio in ipairs(doc.audios or {}) do
  if audio.state == 'pending' then
    cancel(audio, tostring(i - 1))
  end
end
local new_state = commit(job_key, doc, old_state, retention)
if TERMINAL[new_state] then
  return {'cancelled'}
end
return {'requested'}
