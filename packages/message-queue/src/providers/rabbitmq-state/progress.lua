-- ARGV: prefix, id, progress JSON. Stores progress of a job the store knows (else nothing).
if redis.call('EXISTS', jobKey(ARGV[2])) == 1 then redis.call('HSET', jobKey(ARGV[2]), 'p', ARGV[3]) end
return 1
