-- ARGV: prefix, then ids (none = all). Returns how many were deleted.
if #ARGV == 1 then
  local removed = 0
  while true do
    local ids = redis.call('ZRANGE', DEAD, 0, 999)
    if #ids == 0 then return removed end
    removed = removed + removeJobs(DEAD, ids)
  end
end
local ids = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', DEAD, ARGV[i]) then ids[#ids + 1] = ARGV[i] end
end
return removeJobs(DEAD, ids)
