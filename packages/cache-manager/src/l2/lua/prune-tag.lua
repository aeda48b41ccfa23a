-- Removes from a tag set the sampled members whose value no longer exists, in one step (a
-- single node): a writer's SET and SADD of a member both land before or after this script, so
-- a value written again is either seen here (kept) or added back by its SADD after the SREM.
-- KEYS: the tag set, then the value key of each sampled member.
-- ARGV: the sampled members (cache keys), in the order of their value keys.
-- Returns how many members were removed.
local dead = {}
for index = 1, #ARGV do
  if redis.call('EXISTS', KEYS[index + 1]) == 0 then
    dead[#dead + 1] = ARGV[index]
  end
end
if #dead == 0 then
  return 0
end
return redis.call('SREM', KEYS[1], unpack(dead))
