-- ARGV: prefix, then ids (none = all). Returns how many were deleted.
if #ARGV == 1 then return removeAllJobs(DEAD) end
local ids = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', DEAD, ARGV[i]) then ids[#ids + 1] = ARGV[i] end
end
return removeJobs(DEAD, ids)
