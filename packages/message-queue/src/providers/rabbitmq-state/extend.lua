-- Renews leases (lease heartbeat), only of jobs still active under the caller's message: a
-- worker that stalled past its lease must not push the lease of the worker now running the job.
-- ARGV: prefix, leaseUntil, then id and message token ('' = unknown) per job. Returns
-- {cancelled ids, lost ids}: the renewed jobs cancelled while active, and the jobs not renewed.
local cancelled, lost = {}, {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local job = redis.call('HMGET', jobKey(id), 's', 't', 'l')
  if job[1] == 'a' and (ARGV[i + 1] == '' or ARGV[i + 1] == leaseOf(job[2], job[3])) then
    redis.call('ZADD', INDEX.a, 'XX', ARGV[2], id)
    if redis.call('ZSCORE', CANCELLED, id) then cancelled[#cancelled + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {cancelled, lost}
