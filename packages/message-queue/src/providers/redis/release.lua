-- Puts leased jobs back at the front of waiting (graceful close). ARGV: prefix, now, then id, priority, group
for i = 3, #ARGV, 3 do
  if redis.call('ZREM', ACTIVE, ARGV[i]) == 1 then enqueue(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], 0) end
end
finish()
return 1
