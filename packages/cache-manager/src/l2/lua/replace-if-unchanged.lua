-- Compare-and-set of one value (see compare-and-set.lua).
-- KEYS[1]: the value's key. ARGV: digest, bytes, ttl, frame. Returns 1 when replaced, else 0.
return replace_if_unchanged(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
