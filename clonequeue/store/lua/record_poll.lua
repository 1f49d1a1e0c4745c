-- A poll got an answer (or an error): store it and decide what comes next.
-- ARGV: ns, now, job_id, item, gen, status, result_json, next_due, cap, grace_s,
--       retention, first_poll_target, first_poll_min_s, first_poll_max_s, first_poll_lag_s,
--       lost_after_s
--   status: 'running' (queued/processing, or a transient error), 'completed', 'failed'
--   result_json: {model_id, audio_url, subtitle_file, error, last_status, unanswered, refused}
--   (unanswered: the GET itself failed, so the poll says nothing about the task;
--   refused: the API said no to it, e.g. 404 "not found", or answered for another task)
-- Returns {'again', new_gen, polls_so_far, batch, refused (polls refused in a row)}
--       | {'done', n_fanout, batch, entries...}
--       | {'stale'} | {'gone'}
-- where entries are 'gen|item|job' steps to dispatch: first the n_fanout
-- production audios this clone unlocked, then parked steps given the freed slot.
local job_id, item, gen = ARGV[3], ARGV[4], tonumber(ARGV[5])
local status, result, next_due = ARGV[6], cjson.decode(ARGV[7]), tonumber(ARGV[8])
local cap, grace, retention = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]
local target, first_min, first_max = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local first_lag, lost_after = tonumber(ARGV[15]), tonumber(ARGV[16])
local doc, step, job_key, reply = open_step(job_id, item, gen, {running = true})
if reply then
  return reply
end
local member = member_of(item, job_id)
local old_state = doc.state
step.polls = (step.polls or 0) + 1
step.polled_at = NOW
step.last_status = result.last_status
local seen_running = step.running_at -- the last poll the API answered 'still running'

-- Every poll refused for lost_after: the API no longer holds the task (a provider that
-- lost or purged it, or a restarted stand-in). It ends the step, not `unknown`: the
-- API said it has no such task. Polls it did not answer prove nothing either way.
if status == 'running' and result.refused then
  step.refused_since = step.refused_since or NOW
  step.refused = (step.refused or 0) + 1
  if NOW - step.refused_since >= lost_after then
    status = 'failed'
    local last = tostring(result.last_status)
    if string.find(last, 'refused: the API answered', 1, true) then
      -- it answered, about another task: not "no longer holds it" (QA pass: ids that
      -- came back without their prefix, or in upper case, read as a lost task)
      result.error = {kind = 'task_lost', msg = string.format('every poll of this task '
        .. 'for %d s was answered about another (last: %s): no answer can be taken as '
        .. 'its own; ask the provider about it before `clonequeue retry %s --failed`, '
        .. 'which creates it again, billed again', NOW - step.refused_since, last,
        tostring(doc.batch))}
    else
      result.error = {kind = 'task_lost', msg = string.format('the API refused every poll '
        .. 'of this task for %d s (last: %s): it no longer holds it; `clonequeue retry %s '
        .. '--failed` creates it again, billed again', NOW - step.refused_since, last,
        tostring(doc.batch))}
    end
  end
elseif not result.unanswered then
  step.refused_since, step.refused = nil, nil
end

if status == 'running' then
  if doc.deadline and NOW > doc.deadline then
    status = 'failed'
    local where
    if result.unanswered then -- the last polls got no answer about it: it may be done
      where = 'the last poll got no answer about task ' .. tostring(step.remote_id) .. ' ('
        .. tostring(result.last_status) .. '), so it may yet finish and be billed: check it '
        .. 'with the provider'
    else
      where = 'task ' .. tostring(step.remote_id) .. ' was still '
        .. tostring(result.last_status or 'running')
    end
    result.error = {kind = 'deadline', msg = 'deadline exceeded: ' .. where
      .. ' when the job deadline passed; raise CLONEQUEUE_JOB_DEADLINE_S, or `clonequeue retry '
      .. tostring(doc.batch) .. ' --failed` creates it again, billed again'}
  else
    step.gen = gen + 1
    if not result.unanswered then
      step.running_at = NOW
    end
    step.queued_at = NOW -- the next poll's message
    redis.call('ZADD', key('due'), next_due, member)
    redis.call('SET', job_key, cjson.encode(doc))
    return {'again', step.gen, step.polls, doc.batch, step.refused or 0}
  end
end

release_slot(item, job_id)
redis.call('ZREM', key('due'), member)
step.queued_at = nil
step.refused_since, step.refused = nil, nil
step.last_status = nil -- the step's state says it now (fields of a finished step stay few)
local fanout = {}
if status == 'completed' and item == 'c' and not result.model_id then
  status = 'failed'
  result.error = {kind = 'bad_answer', msg = 'the clone task completed without a modelId'}
elseif status == 'completed' and item ~= 'c' and not result.audio_url then
  status = 'failed'
  result.error = {kind = 'bad_answer',
    msg = 'the audio task completed without an audioUrl (none, or not an http(s) URL)'}
end
if status == 'completed' then
  local created = step.submitted_at or NOW
  learn_first_poll(doc, item, (seen_running or created) - created, NOW - created,
    target, first_min, first_max, first_lag)
  step.running_at = nil
  step.polled_at = nil -- the same as completed_at
  step.state = 'completed'
  step.completed_at = NOW
  step.audio_url = result.audio_url
  if item == 'c' then
    step.model_id = result.model_id
    for i, audio in ipairs(doc.audios or {}) do
      if audio.state == 'completed' or audio.state == 'unknown' then
        -- made with an earlier clone of this voice (a re-clone after expiry): keep it;
        -- an unknown one may exist and be billed: sent again only by `retry --unknown`
      elseif doc.cancel_requested then
        audio.state = 'cancelled'
      else
        audio.state = 'pending'
        audio.gen = (audio.gen or 0) + 1
        audio.queued_at = NOW
        local m = member_of(tostring(i - 1), job_id)
        redis.call('ZADD', key('due'), NOW + grace, m)
        fanout[#fanout + 1] = audio.gen .. '|' .. m
      end
    end
  else
    step.subtitle_file = result.subtitle_file
  end
else
  step.state = 'failed'
  step.error = result.error
  if step.error.kind == 'remote' then
    -- the provider refunds failed tasks
    redis.call('HINCRBY', key('stats'), 'chars_refunded', step.chars or 0)
  end
end
commit(job_key, doc, old_state, retention)
local out = {'done', #fanout, doc.batch}
for _, entry in ipairs(fanout) do
  out[#out + 1] = entry
end
for _, entry in ipairs(unpark(cap, grace, 50)) do
  out[#out + 1] = entry
end
return out
