-- One standalone batch call's reply (32 one-limit keys) built the two ways check.lua has built it (see server-reply.sh).
local mode, distinct = ARGV[1], ARGV[2] == '1'
local now = 1765040000123
local format = string.format
local out
if mode == 'array' then
  out = { now, 1 }
  for k = 0, 31 do
    local o = 2 + k * 7
    local remaining = distinct and 999999876 - k or 999999876
    out[o + 1] = 0; out[o + 2] = 1; out[o + 3] = remaining; out[o + 4] = 59877
    out[o + 5] = 0; out[o + 6] = 0; out[o + 7] = 59877
  end
  return out
end
local TEXT = setmetatable({}, { __index = function(t, v) local s = format('%d', v); if v == v then t[v] = s end; return s end })
out = { TEXT[now], '1' }
for k = 0, 31 do
  local o = 2 + k * 7
  local remaining = distinct and 999999876 - k or 999999876
  out[o + 1] = '0'; out[o + 2] = '1'; out[o + 3] = (mode == 'direct') and format('%d', remaining) or TEXT[remaining]; out[o + 4] = TEXT[59877]
  out[o + 5] = '0'; out[o + 6] = '0'; out[o + 7] = TEXT[59877]
end
return table.concat(out, ' ', 1, 226)
