-- ARGV: prefix, id. Returns {record, state, finishedAt, result, progress, terminal error} or false.
local id = ARGV[2]
local record = redis.call('GET', P .. 'j:' .. id)
if not record then return false end
local state, finishedAt = 'waiting', ''
if redis.call('ZSCORE', ACTIVE, id) then
  state = 'active'
else
  local score = redis.call('ZSCORE', COMPLETED, id)
  if score then
    state, finishedAt = 'completed', score
  else
    score = redis.call('ZSCORE', DEAD, id)
    if score then
      state, finishedAt = 'failed', score
    elseif redis.call('ZSCORE', DELAYED, id) then
      state = 'delayed'
    elseif redis.call('ZSCORE', WC, id) then
      state = 'waiting-children'
    end
  end
end
return {record, state, finishedAt, redis.call('HGET', P .. 'res', id) or '', redis.call('HGET', P .. 'prog', id) or '',
  redis.call('HGET', P .. 'derr', id) or ''}
