-- The broker confirmed messages: takes them off the outbox (unless a newer message is due).
-- ARGV: prefix, then id, token pairs.
for i = 2, #ARGV, 2 do
  if redis.call('HGET', jobKey(ARGV[i]), 't') == ARGV[i + 1] then redis.call('ZREM', OUTBOX, ARGV[i]) end
end
return 1
