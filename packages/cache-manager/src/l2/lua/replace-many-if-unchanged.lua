-- Compare-and-set of many values in one call (see compare-and-set.lua), on a single node: one
-- script per chunk instead of one per key.
-- KEYS: the values' keys. ARGV: digest, bytes, ttl, frame for each key in turn.
-- Returns a 1 (replaced) or 0 (changed or vanished since read) per key.
local results = {}
for index, key in ipairs(KEYS) do
  local at = (index - 1) * 4
  results[index] = replace_if_unchanged(key, ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4])
end
return results
