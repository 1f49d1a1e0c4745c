-- Shared by every script (Redis 6.2 has no shared Lua functions, so scripts.py
-- prepends this file). Keys are built from the namespace in ARGV[1]; a job's
-- batch key is only known after reading the job, so clonequeue needs a single
-- Redis server, not Redis Cluster.
--
-- A job is one JSON document at <ns>:job:<id>. Its steps are doc.clone and
-- doc.audios[i + 1]; each step has its own small machine:
--   pending -> submitting -> running -> completed | failed | unknown | cancelled
-- and a generation number `gen`: a message whose gen is not the step's current
-- gen is stale and does nothing. That rule makes duplicate deliveries harmless.

local NS = ARGV[1]
local NOW = tonumber(ARGV[2])
local EVENTS_MAXLEN = 1000000
local TERMINAL = {completed = true, failed = true, unknown = true, cancelled = true}

local function key(...)
  return table.concat({NS, ...}, ':')
end

local function load_doc(job_key)
  local raw = redis.call('GET', job_key)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function step_of(doc, item)
  if item == 'c' then
    return doc.clone
  end
  if type(doc.audios) ~= 'table' then
    return nil
  end
  return doc.audios[tonumber(item) + 1]
end

-- The job and the step a message is for, if the step is still in one of `states`
-- at generation `gen`; otherwise the reply the script should give: gone or stale.
local function open_step(job_id, item, gen, states)
  local job_key = key('job', job_id)
  local doc = load_doc(job_key)
  if not doc then
    return nil, nil, job_key, {'gone'}
  end
  local step = step_of(doc, item)
  if not step or step.gen ~= gen or not states[step.state] then
    return nil, nil, job_key, {'stale'}
  end
  return doc, step, job_key, nil
end

local function member_of(item, job_id)
  return item .. '|' .. job_id
end

-- The queue a step's outstanding message waits in: its poll's or its create's.
local function queue_of(item, step)
  if step.state == 'running' then
    return 'poll'
  elseif item == 'c' then
    return 'submit'
  end
  return 'produce'
end

-- When the step's outstanding message was queued: `queued_at`, set by every script
-- that records a message; a job's first create is the producer's, queued when the
-- job was created.
local function queued_at(doc, step)
  return tonumber(step.queued_at) or tonumber(doc.created_at) or 0
end

-- Queues are first in, first out: once a worker took a message queued at T, every
-- message queued well before T has left the queue (run, held by a worker, or lost).
-- <ns>:queue_head keeps, per queue, the latest `queued_at` a worker took; the
-- watchdog lets a backlog postpone a re-drive only while the head is behind it.
local function advance_head(doc, step, item)
  local field, at = queue_of(item, step), queued_at(doc, step)
  local head = tonumber(redis.call('HGET', key('queue_head'), field)) or 0
  if at > head then
    redis.call('HSET', key('queue_head'), field, tostring(at))
  end
end

-- The job's state follows from its steps.
local function job_state(doc)
  local clone = doc.clone.state
  if clone == 'pending' then
    return 'pending'
  elseif clone == 'submitting' then
    return 'submitting'
  elseif clone == 'running' then
    return 'cloning'
  elseif clone ~= 'completed' then
    return clone -- failed, unknown, cancelled
  end
  local open, failed, unknown, cancelled = false, false, false, false
  for _, audio in ipairs(doc.audios or {}) do
    local s = audio.state
    if s == 'failed' then
      failed = true
    elseif s == 'unknown' then
      unknown = true
    elseif s == 'cancelled' then
      cancelled = true
    elseif s ~= 'completed' then
      open = true
    end
  end
  if open then
    return 'producing'
  elseif unknown then
    return 'unknown' -- needs an operator's decision first
  elseif failed then
    return 'failed'
  elseif cancelled then
    return 'cancelled'
  end
  return 'completed'
end

local function batch_keys(doc)
  local bkey = key('batch', doc.batch)
  return bkey, bkey .. ':jobs'
end

-- ``command`` (EXPIRE, PERSIST) on the record of every job in the batch's list
local function call_on_jobs(lkey, command, ...)
  for _, id in ipairs(redis.call('LRANGE', lkey, 0, -1)) do
    redis.call(command, key('job', id), ...)
  end
end

local function check_batch_finished(doc, retention)
  local bkey, lkey = batch_keys(doc)
  local c = redis.call('HMGET', bkey, 'total', 'completed', 'failed', 'unknown', 'cancelled')
  local done = 0
  for i = 2, 5 do
    done = done + (tonumber(c[i]) or 0)
  end
  if done >= (tonumber(c[1]) or 0) then
    redis.call('HSET', bkey, 'finished_at', NOW)
    redis.call('EXPIRE', bkey, retention)
    redis.call('EXPIRE', lkey, retention)
    -- its jobs' records live as long as it does: kept while it ran (commit), they expire
    -- with it. One pass over its job list (QA pass: a job that finished days before a
    -- retry finished the batch expired first, and results() returned fewer records than
    -- status counted, without a word)
    call_on_jobs(lkey, 'EXPIRE', retention)
  end
end

-- A retry took a finished batch back: it and its jobs' records are kept again until it
-- finishes (else a retry that outlasted what was left of the retention lost them).
local function keep_batch(doc)
  local bkey, lkey = batch_keys(doc)
  if redis.call('HDEL', bkey, 'finished_at') == 1 then
    call_on_jobs(lkey, 'PERSIST')
  end
  redis.call('PERSIST', bkey)
  redis.call('PERSIST', lkey)
end

-- Save the document, keep the batch counters and the event stream in step with
-- the job's state, and give finished jobs their retention TTL.
local function commit(job_key, doc, old_state, retention)
  local new_state = job_state(doc)
  doc.state = new_state
  local was_terminal, is_terminal = TERMINAL[old_state], TERMINAL[new_state]
  if is_terminal then
    -- a finished job keeps only finished_at: the deadline and updated_at are over
    doc.finished_at = doc.finished_at or NOW
    doc.deadline = nil
    doc.updated_at = nil
  else
    doc.finished_at = nil
    doc.updated_at = NOW
  end
  redis.call('SET', job_key, cjson.encode(doc))
  if new_state ~= old_state then
    local bkey, lkey = batch_keys(doc)
    redis.call('HINCRBY', bkey, old_state, -1)
    redis.call('HINCRBY', bkey, new_state, 1)
    if is_terminal and not was_terminal then
      redis.call('XADD', key('events'), 'MAXLEN', '~', EVENTS_MAXLEN, '*',
        'job', doc.id, 'batch', doc.batch, 'state', new_state, 'at', tostring(NOW))
      check_batch_finished(doc, retention)
    elseif was_terminal and not is_terminal then
      keep_batch(doc)
    end
  end
  -- SET cleared the record's TTL: a finished job's expires with its batch
  -- (check_batch_finished); until the batch finishes it is kept, as the batch is
  if is_terminal then
    local bkey = batch_keys(doc)
    if redis.call('HEXISTS', bkey, 'finished_at') == 1 then
      redis.call('EXPIRE', job_key, retention)
    end
  end
  return new_state
end

local function parked_key(item)
  if item == 'c' then
    return key('parked', 'clone')
  end
  return key('parked', 'audio')
end

-- Wait for a free slot or for the pause to lift; no message is outstanding.
local function park(step, item, job_id)
  local member = member_of(item, job_id)
  step.parked = true
  step.queued_at = nil
  redis.call('ZREM', key('due'), member)
  redis.call('ZADD', parked_key(item), NOW, step.gen .. '|' .. member)
end

-- Move parked steps into `due` for the caller to dispatch, as many as there are
-- free slots (audios of cloned voices first). Returns 'gen|item|job' entries.
local function unpark(cap, grace, limit)
  if redis.call('EXISTS', key('paused')) == 1 then
    return {}
  end
  local free = limit
  if cap > 0 then
    free = math.min(limit, cap - redis.call('SCARD', key('inflight')))
  end
  local out = {}
  for _, which in ipairs({'audio', 'clone'}) do
    if free <= #out then
      break
    end
    local popped = redis.call('ZPOPMIN', key('parked', which), free - #out)
    for i = 1, #popped, 2 do
      local entry = popped[i]
      local member = string.sub(entry, string.find(entry, '|', 1, true) + 1)
      redis.call('ZADD', key('due'), NOW + grace, member)
      out[#out + 1] = entry
    end
  end
  return out
end

-- The first poll's delay is learned per batch and kind of step from what each
-- completed remote task tells: its duration D lies between the last poll that saw
-- it queued/processing (or the create) and the poll that found it done. Two
-- quantiles of D are tracked with the stochastic quantile rule, each update
-- comparing that bracket's midpoint with the estimate *now* (so a burst of
-- answers to polls scheduled long ago cannot drive it away):
--   hi: the `target` quantile (e.g. 0.8): when most tasks are done;
--   lo: a low quantile: when the first ones are done.
-- The delay is hi, but at most lo + lag_s (the longest poll interval), so a task
-- that finishes early waits no longer for its result than the usual cadence gives.
local LOW_QUANTILE = 0.05

local function first_poll_field(item)
  return item == 'c' and 'first_poll_clone' or 'first_poll_audio'
end

local function quantile_step(estimate, observed, q)
  local step = math.min(math.max(0.1 * estimate, 0.25), 5)
  if observed <= estimate then
    return estimate - (1 - q) * step
  end
  return estimate + q * step
end

-- lb, ub: seconds from the create to the last poll that saw the task running (0 if
-- none) and to the poll that found it done. An answer whose window is wider than the
-- delay learned so far plus lag_s (and than twice it) came from a poll that waited its
-- turn while calls were scarce: it says when we asked, not when the task ended, and
-- learning from it pushed the delay up, so later polls came later still (issue 15's
-- bench: clones done at 5-12 s first polled ~35 s after). It is not learned from.
local function learn_first_poll(doc, item, lb, ub, target, min_s, max_s, lag_s)
  if target <= 0 then
    return
  end
  local bkey = key('batch', doc.batch)
  local field = first_poll_field(item)
  local known = redis.call('HMGET', bkey, field .. '_hi', field .. '_lo', field)
  local current = math.max(tonumber(known[3]) or min_s, min_s)
  if ub - lb > math.max(current + lag_s, 2 * current) then
    return
  end
  local observed = (lb + ub) / 2
  local hi = quantile_step(tonumber(known[1]) or min_s, observed, target)
  local lo = quantile_step(tonumber(known[2]) or min_s, observed, LOW_QUANTILE)
  local delay = math.min(math.max(math.min(hi, lo + lag_s), min_s), max_s)
  redis.call('HSET', bkey, field, tostring(delay), field .. '_hi', tostring(hi),
    field .. '_lo', tostring(lo))
end

local function release_slot(item, job_id)
  return redis.call('SREM', key('inflight'), member_of(item, job_id))
end
