-- The broker did not confirm an add: releases the claims whose message was never delivered
-- (still queued on the token the add gave them), so the add can be retried with the same id.
-- ARGV: prefix, then id, token pairs.
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local state = redis.call('HMGET', jobKey(id), 's', 't')
  if (state[1] == 'q' and state[2] == ARGV[i + 1]) or (state[1] == 'w' and state[2] == '0') then
    removeJobs({id})
  end
end
return 1
