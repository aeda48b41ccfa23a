-- ARGV: prefix, now. Returns {waiting, delayed, active, waiting-children, completed, dead, paused}.
return {redis.call('ZCOUNT', INDEX.q, '-inf', ARGV[2]), redis.call('ZCOUNT', INDEX.q, '(' .. ARGV[2], '+inf'),
  redis.call('ZCARD', INDEX.a), redis.call('ZCARD', INDEX.w), redis.call('ZCARD', INDEX.c),
  redis.call('ZCARD', INDEX.f), redis.call('HGET', META, 'paused') or '0'}
