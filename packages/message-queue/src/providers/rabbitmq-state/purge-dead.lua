-- ARGV: prefix, then ids (none = all). Deletes dead jobs; returns how many.
local ids = {}
if #ARGV == 1 then
  local removed = 0
  while true do
    local chunk = redis.call('ZRANGE', INDEX.f, 0, 999)
    if #chunk == 0 then return removed end
    removed = removed + removeJobs(chunk)
  end
end
for i = 2, #ARGV do
  if redis.call('ZSCORE', INDEX.f, ARGV[i]) then ids[#ids + 1] = ARGV[i] end
end
return removeJobs(ids)
