-- ARGV: prefix. Returns {waiting, delayed, active, waiting-children, completed, dead, paused}
local waiting = redis.call('ZCARD', WAIT)
for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do
  waiting = waiting + redis.call('ZCARD', P .. 'gw:' .. group)
end
return {waiting, redis.call('ZCARD', DELAYED), redis.call('ZCARD', ACTIVE), redis.call('ZCARD', WC),
  redis.call('ZCARD', COMPLETED), redis.call('ZCARD', DEAD), redis.call('HGET', META, 'paused') or '0'}
