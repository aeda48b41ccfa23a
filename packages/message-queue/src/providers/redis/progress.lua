-- ARGV: prefix, id, progress JSON. Stores the progress of a job that exists (else nothing): a
-- late call (un-awaited, or from a run that outlived its timeout) after the job was removed
-- would leave an entry no removal deletes, shown as the progress of a job re-added with the id.
if redis.call('EXISTS', P .. 'j:' .. ARGV[2]) == 1 then redis.call('HSET', P .. 'prog', ARGV[2], ARGV[3]) end
return 1
