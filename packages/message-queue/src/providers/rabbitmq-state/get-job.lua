-- ARGV: prefix, id. Returns {record, state, availableAt, finishedAt, result, progress, terminal error} or false.
local job = redis.call('HMGET', jobKey(ARGV[2]), 'r', 's', 'f', 'res', 'p', 'e')
if not job[1] then return false end
local availableAt = ''
if job[2] == 'q' then availableAt = redis.call('ZSCORE', INDEX.q, ARGV[2]) or '' end
return {job[1], job[2], availableAt, job[3] or '', job[4] or '', job[5] or '', job[6] or ''}
