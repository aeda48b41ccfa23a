-- Claims job ids before their messages are published (dedupe by jobId is atomic here).
-- ARGV: prefix, outbox deadline, count, then per job: id, record, availableAt, group ('' = none).
-- Returns 1 (claimed: publish it with token 1) or 0 (id held) per job.
local deadline = tonumber(ARGV[2])
local results = {}
local index = 4
for i = 1, tonumber(ARGV[3]) do
  local id = ARGV[index]
  local key = jobKey(id)
  if redis.call('HSETNX', key, 's', 'q') == 1 then
    redis.call('HSET', key, 'r', ARGV[index + 1], 't', 1)
    redis.call('ZADD', INDEX.q, ARGV[index + 2], id)
    redis.call('ZADD', OUTBOX, fmt(deadline), id)
    knowGroup(ARGV[index + 3])
    results[i] = 1
  else
    results[i] = 0
  end
  index = index + 4
end
return results
