-- Extends the physical expiry of a value a factory run will replace by compare-and-set (see
-- compare-and-set.lua, which comes before these lines), only if the key still holds the bytes
-- the run read: a run that outlasts the value's TTL then still finds it, and its write lands. A
-- value deleted or replaced since the read is left alone (its delete or write must win over the
-- run). PEXPIRE GT never shortens a TTL, and leaves a value without one as it is. The value's tag
-- sets (KEYS[2..], on a single node; a Cluster sends their PEXPIREs beside this script, see
-- RedisTier.extendIfUnchanged) are extended alike, so that a tag delete during the run still
-- finds the key in them.
-- KEYS[1]: the value's key, then its tag sets' keys. ARGV: digest, frame (see compare-and-set.lua),
-- the TTL in ms to extend to. Returns 1 when the key holds the value read (extended, or already
-- living longer), 0 when it changed or vanished since.
if not unchanged(redis.call('GET', KEYS[1]), ARGV[1], ARGV[2]) then
  return 0
end
for index = 1, #KEYS do
  redis.call('PEXPIRE', KEYS[index], ARGV[3], 'GT')
end
return 1
