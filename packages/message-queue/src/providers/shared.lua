-- Prepended to every script of both Redis-backed stores (the Redis provider's and RabbitMQ's
-- job state), before the folder's common.lua: what both need alike.

-- A stored record, decoded to read its routing fields (p, g, P). The stored string is never
-- re-encoded: it stays byte-for-byte what Node wrote. cjson rejects the escapes of lone UTF-16
-- surrogates (\ud800) that JSON.stringify writes for a cut emoji, which would fail the script
-- mid-way (a delayed or stalled job taken off its set and never put back); this copy replaces
-- them, as only routing fields are read from it.
local function decodeRecord(raw)
  if string.find(raw, '\\u[dD][89a-fA-F]') then
    raw = string.gsub(raw, '\\u[dD][89a-fA-F]%x%x', '\\u003f')
  end
  local ok, record = pcall(cjson.decode, raw)
  if ok then return record end
  -- Nested deeper than cjson's default 1,000 levels (JSON.stringify goes a few thousand deep):
  -- the limit is raised for this call only, as every script of the server shares it.
  cjson.decode_max_depth(10000)
  ok, record = pcall(cjson.decode, raw)
  cjson.decode_max_depth(1000)
  if not ok then error(record) end
  return record
end

-- An entry the backend writes (stalled, cancelled) has the tries the job made (its attemptsMade)
-- as `attempt`, as a failed try's entry has that try's number: one meaning on every provider.
local function withAttempt(errJson, record)
  if type(record) ~= 'table' or not record.m or record.m == 0 then return errJson end
  local entry = cjson.decode(errJson)
  entry.attempt = record.m
  return cjson.encode(entry)
end

-- Flow parents this script dead-lettered by the 'fail' policy: id, name, message per parent
-- (the worker counts and publishes them as dead-lettered).
local failedParents = {}

-- redis.call(command, [key,] values...) over a list of any length, 1,000 values per call:
-- unpack() fails past ~8,000 values ("too many results to unpack"), and a worker of the largest
-- concurrency (10,000) leases and settles more than that in one exchange. `key` nil: no key
-- argument (MGET). Returns the array replies joined in order (false where the reply had nil).
local function callSliced(command, key, values)
  -- One slice (every exchange of a worker below 1,000 at once): the reply as it is, no copy.
  if #values == 0 then return {} end
  if #values <= 1000 then
    if key then return redis.call(command, key, unpack(values)) end
    return redis.call(command, unpack(values))
  end
  local joined = {}
  for first = 1, #values, 1000 do
    local last = math.min(first + 999, #values)
    local reply
    if key then
      reply = redis.call(command, key, unpack(values, first, last))
    else
      reply = redis.call(command, unpack(values, first, last))
    end
    if type(reply) == 'table' then
      for k = 1, last - first + 1 do joined[#joined + 1] = reply[k] end
    end
  end
  return joined
end
