-- ARGV: prefix, now, count, then per job: id, record JSON, priority, group ('' = none), availableAt
local now = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local results = {}
local accepted = {}
local index = 4
for i = 1, count do
  local id = ARGV[index]
  if redis.call('SET', P .. 'j:' .. id, ARGV[index + 1], 'NX') then
    results[i] = 1
    accepted[#accepted + 1] = i
  else
    results[i] = 0
  end
  index = index + 5
end
if #accepted > 0 then
  local base = seqBlock(#accepted)
  local delayed = {}
  for k, i in ipairs(accepted) do
    local at = 4 + (i - 1) * 5
    local availableAt = tonumber(ARGV[at + 4])
    if availableAt > now then
      delayed[#delayed + 1] = ARGV[at + 4]
      delayed[#delayed + 1] = ARGV[at]
      woke = true
    else
      enqueue(ARGV[at], tonumber(ARGV[at + 2]), ARGV[at + 3], base + k)
    end
  end
  zaddChunked(DELAYED, delayed)
end
finish()
return results
