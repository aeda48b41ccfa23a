-- Factory runs' writes by compare-and-set (see compare-and-set.lua), each with its tag sets in the
-- same step: a write whose key changed since it was read neither stores its value nor names the
-- key in a tag set (added first and then not written, the key stayed a stray member of sets its
-- value never carried). A write of a run that holds the key's lease is also refused once another
-- holder has the lease (`lease_allows`: a forced run took it over). On a single node, any number
-- of writes in one call; on a Cluster, only keys of one slot (a value and tag sets of one hash tag).
-- KEYS: per write, its value's key, then its tag sets' keys, then its lease key when it has a token.
-- ARGV: per write, the number of its tag sets, digest, bytes, ttl, frame, the tag sets' member
-- (the cache key), their expiry in ms (NX sets a first one, GT extends it: a set lives as long
-- as its longest-lived member), and the run's lease token ('' for none).
-- Returns a 1 (written) or 0 (changed since read, or its lease taken over) per write.
local results = {}
local key_at = 1
local arg_at = 1
while arg_at <= #ARGV do
  local tags = tonumber(ARGV[arg_at])
  local token = ARGV[arg_at + 7]
  local leased = token ~= ''
  local written = 0
  if not leased or lease_allows(KEYS[key_at + 1 + tags], token) then
    written = replace_if_unchanged(
      KEYS[key_at],
      ARGV[arg_at + 1],
      ARGV[arg_at + 2],
      ARGV[arg_at + 3],
      ARGV[arg_at + 4]
    )
  end
  if written == 1 then
    for tag = 1, tags do
      local tag_key = KEYS[key_at + tag]
      redis.call('SADD', tag_key, ARGV[arg_at + 5])
      redis.call('PEXPIRE', tag_key, ARGV[arg_at + 6], 'NX')
      redis.call('PEXPIRE', tag_key, ARGV[arg_at + 6], 'GT')
    end
  end
  results[#results + 1] = written
  key_at = key_at + 1 + tags
  if leased then
    key_at = key_at + 1
  end
  arg_at = arg_at + 8
end
return results
