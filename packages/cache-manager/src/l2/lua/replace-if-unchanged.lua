-- Compare-and-set of one value (see compare-and-set.lua).
-- KEYS[1]: the value's key, KEYS[2] (optional) the lease key of the run writing it, in the same
-- slot. ARGV: digest, bytes, ttl, frame, and with KEYS[2] the run's lease token: not written
-- once another holder has that lease (see `lease_allows`). Returns 1 when replaced, else 0.
if KEYS[2] and not lease_allows(KEYS[2], ARGV[5]) then
  return 0
end
return replace_if_unchanged(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
