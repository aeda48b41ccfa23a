-- ARGV: prefix, now, then id, fresh record JSON, priority, group. Returns how many moved.
local moved = 0
local count = (#ARGV - 2) / 4
if count == 0 then return 0 end
local base = seqBlock(count)
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('ZREM', DEAD, id) == 1 then
    redis.call('SET', P .. 'j:' .. id, ARGV[i + 1])
    redis.call('HDEL', P .. 'derr', id)
    redis.call('HDEL', P .. 'stalls', id)
    redis.call('ZREM', CANCELLED, id)
    enqueue(id, tonumber(ARGV[i + 2]), ARGV[i + 3], base + (i - 3) / 4 + 1)
    moved = moved + 1
  end
end
finish()
return moved
