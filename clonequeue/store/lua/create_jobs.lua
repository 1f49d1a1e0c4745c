-- Record new jobs of one batch; a job id (custom_id) that exists is left alone.
-- Each new job's first create gets its entry in `due` here, in the same call: a
-- producer that dies before publishing, or a Redis that loses the message, leaves
-- an entry the watchdog re-drives.
-- ARGV: ns, now, batch_id, since ('' = none), then job_id, doc_json pairs.
-- Returns {created_count, i1, batch1, same1, i2, batch2, same2, ...}: for each job
-- that already existed, its 1-based position in the call, the batch that holds it,
-- and 1 when its content hash `h` equals the new row's (a harmless re-submission).
-- Or {-1, 'cancelled' | 'purged', when}: the batch was cancelled or purged at or after
-- `since` (when the submit calling began), and nothing is recorded: rows went on into a
-- cancelled batch as pending jobs, or brought a purged one back (QA pass).
local batch_id = ARGV[3]
local bkey = key('batch', batch_id)
local lkey = bkey .. ':jobs'
local due = key('due')
local since = tonumber(ARGV[4])
if since then
  local cancelled_at = tonumber(redis.call('HGET', bkey, 'cancelled_at'))
  if cancelled_at and cancelled_at >= since then return {-1, 'cancelled', cancelled_at} end
  local purged_at = tonumber(redis.call('GET', bkey .. ':purged'))
  if purged_at and purged_at >= since then return {-1, 'purged', purged_at} end
end
local created = 0
local out = {0}
for i = 5, #ARGV, 2 do
  local job_id, doc = ARGV[i], ARGV[i + 1]
  local job_key = key('job', job_id)
  if redis.call('SET', job_key, doc, 'NX') then
    redis.call('RPUSH', lkey, job_id)
    redis.call('ZADD', due, NOW, member_of('c', job_id))
    created = created + 1
  else
    local existing = cjson.decode(redis.call('GET', job_key))
    out[#out + 1] = (i - 3) / 2
    out[#out + 1] = existing.batch
    out[#out + 1] = (existing.h == cjson.decode(doc).h) and 1 or 0
  end
end
if created > 0 then
  redis.call('HSETNX', bkey, 'created_at', NOW)
  redis.call('HINCRBY', bkey, 'total', created)
  redis.call('HINCRBY', bkey, 'pending', created)
  redis.call('HDEL', bkey, 'finished_at')
  redis.call('PERSIST', bkey)
  redis.call('PERSIST', lkey)
  redis.call('ZADD', key('batches'), 'NX', NOW, batch_id)
end
out[1] = created
return out
