-- An operator asked to retry a finished job's failed, unknown or cancelled steps. A
-- new attempt is recorded; completed steps are never touched. When a production
-- audio failed because its modelId expired, the voice is cloned again first. A
-- cancelled step was never sent (cancel_job.lua cancels only pending ones).
-- ARGV: ns, now, job_id, what ('failed'|'unknown'|'cancelled'), grace_s, deadline_s, retention,
--       settle_s, check ('1': only say whether an unknown job is settling; purge and
--       `status` ask, so the rule is written once)
-- Returns {'ok', entries...} (steps to dispatch, 'gen|item|job') | {'skipped', state} | {'gone'}
--       | {'settling', until}: an unknown step whose worker may only be frozen
--       (`lost_worker` less than settle_s ago) is left alone: its answer may still come,
--       and sending again then pays twice (QA: a SIGSTOPped worker's 18 creates, retried
--       as its status advised, were all made twice when it woke) | {'clear'} (check only).
local job_id, what = ARGV[3], ARGV[4]
local grace, deadline_s, retention = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local settle = tonumber(ARGV[8]) or 0
local check_only = ARGV[9] == '1'
local job_key = key('job', job_id)
local doc = load_doc(job_key)
if not doc then
  return {'gone'}
end
local old_state = doc.state

-- The retry recorded: the job's document written, and the steps to dispatch returned.
local function retried(entries)
  doc.cancel_requested = nil
  if what == 'cancelled' then
    doc.cancelled = nil -- taken back: its result no longer says who cancelled it
  end
  doc.retries = (doc.retries or 0) + 1
  commit(job_key, doc, old_state, retention)
  local out = {'ok'}
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry
  end
  return out
end

if what == 'cancelled' and not check_only and not TERMINAL[old_state] and doc.cancel_requested then
  -- A cancel that has not ended the job yet (its clone still in flight) is taken back
  -- too: it had kept its request, and its audios were cancelled when the clone was done,
  -- paid for and left unused (QA pass: 142 of 200 jobs after cancel + retry --cancelled).
  -- Its cancelled audios are pending again: sent now if the clone is done, else when it
  -- is (record_poll fans out the pending ones).
  local entries = {}
  for i, audio in ipairs(doc.audios or {}) do
    if audio.state == 'cancelled' then
      audio.state = 'pending'
      audio.gen = (audio.gen or 0) + 1
      if doc.clone.state == 'completed' then
        local member = member_of(tostring(i - 1), job_id)
        audio.queued_at = NOW
        redis.call('ZADD', key('due'), NOW + grace, member)
        entries[#entries + 1] = audio.gen .. '|' .. member
      end
    end
  end
  return retried(entries)
end
if not TERMINAL[old_state] or old_state == 'completed' or (check_only and old_state ~= 'unknown') then
  return {'skipped', old_state}
end
-- Only a retry of unknown work sends an unknown step again (a re-clone for `failed`
-- leaves the unknown audios as they are), so only it waits for them to settle.
if what == 'unknown' and settle > 0 then
  local latest = 0
  for _, step in ipairs({doc.clone, unpack(doc.audios or {})}) do
    local err = step.error
    if step.state == 'unknown' and type(err) == 'table' and err.kind == 'lost_worker' then
      latest = math.max(latest, tonumber(err.at) or 0)
    end
  end
  if NOW - latest < settle then
    return {'settling', tostring(latest + settle)}
  end
end
if check_only then
  return {'clear'}
end

local function reset(step)
  step.state = 'pending'
  step.gen = (step.gen or 0) + 1
  -- a new attempt gets CLONEQUEUE_SUBMIT_MAX_ATTEMPTS tries of its own (release_create.lua);
  -- the count itself goes on (the result's `attempts`)
  step.attempts_before = step.attempts
  step.error = nil
  step.remote_id = nil
  step.parked = nil
  step.queued_at = nil
  step.audio_url = nil
  step.subtitle_file = nil
  step.completed_at = nil
end

local clone = doc.clone
local reclone = clone.state == what
if clone.state == 'completed' and not clone.activated then
  for _, audio in ipairs(doc.audios or {}) do
    if audio.state == what and type(audio.error) == 'table' and audio.error.kind == 'model_expired' then
      reclone = true
    end
  end
end

local entries = {}
local function dispatch(step, item)
  step.queued_at = NOW
  local member = member_of(item, job_id)
  redis.call('ZADD', key('due'), NOW + grace, member)
  entries[#entries + 1] = step.gen .. '|' .. member
end

if reclone then
  reset(clone)
  clone.model_id = nil
  clone.activated = nil
  doc.deadline = nil
  for _, audio in ipairs(doc.audios or {}) do
    -- an unknown audio's create may exist and be billed: sent again only when asked
    -- (`retry --unknown`), never as a side effect of re-cloning for a failed one
    if audio.state ~= 'completed' and (audio.state ~= 'unknown' or what == 'unknown') then
      reset(audio)
    end
  end
  dispatch(clone, 'c')
elseif clone.state == 'completed' then
  for i, audio in ipairs(doc.audios or {}) do
    if audio.state == what then
      reset(audio)
      dispatch(audio, tostring(i - 1))
    end
  end
  doc.deadline = NOW + deadline_s
end
if #entries == 0 then
  return {'skipped', old_state}
end
return retried(entries)
