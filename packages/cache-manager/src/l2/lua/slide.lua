-- Slides a value just read by MGET/GET when it is a sliding entry still fresh (see
-- slide-frame.lua, which comes before these lines): what a cache without a cache-level window
-- sends after reading an entry written with its own `slidingTtlMs`.
-- KEYS[1]: the value's key. ARGV[1]: the caller's clock in ms. Returns nil.
slide(KEYS[1], tonumber(ARGV[1]))
