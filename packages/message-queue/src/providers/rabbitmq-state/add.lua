-- Claims job ids before their messages are published (dedupe by jobId is atomic here).
-- ARGV: prefix, outbox deadline, count, then per job: id, record, availableAt, group ('' = none).
-- Returns per job the token to publish its message with (claimed; see newToken) or 0 (id held).
local deadline = tonumber(ARGV[2])
local results = {}
local index = 4
for i = 1, tonumber(ARGV[3]) do
  local id = ARGV[index]
  local key = jobKey(id)
  if redis.call('HSETNX', key, 's', 'q') == 1 then
    redis.call('HSET', key, 'r', ARGV[index + 1])
    redis.call('ZADD', INDEX.q, ARGV[index + 2], id)
    redis.call('ZADD', OUTBOX, fmt(deadline), id)
    knowGroup(ARGV[index + 3])
    results[i] = newToken(id)
  else
    results[i] = 0
  end
  index = index + 4
end
return results
