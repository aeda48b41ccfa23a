-- Puts leased jobs back to queued (graceful close); their message is requeued as it is.
-- ARGV: prefix, now, then ids.
for i = 3, #ARGV do
  if redis.call('HGET', jobKey(ARGV[i]), 's') == 'a' then move(ARGV[i], 'a', 'q', tonumber(ARGV[2])) end
end
return 1
