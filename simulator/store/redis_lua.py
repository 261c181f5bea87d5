"""The Redis store's Lua scripts: one atomic read of what a call needs first, pages of an index, and the commit.

Keys live under one prefix with a hash tag, `{tsim}:...` by default, so that every key hashes to one
slot (what a Redis Cluster needs for a script that touches several keys):

    {P}:seq            the counter (submission, queueing and start order)
    {P}:rev            bumped on every change of the running set: what an optimistic transaction guards
    {P}:jobs           sorted set of every job, score = submission order
    {P}:lane:1/0       one sorted set per priority, score = queueing order (premium lane first; FIFO within)
    {P}:running        sorted set of running attempts, score = when the attempt ends (the delayed-work set)
    {P}:finished       sorted set of finished jobs, score = when they finished (expiry walks it from the front)
    {P}:job:<id>       hash: v (version), d (the record as JSON, without the counters), s, q, t (the counters)
    {P}:user:<uid>     sorted set of one user's jobs, score = submission order
    {P}:idem:<uid>     hash: Idempotency-Key -> job id
    {P}:reads          hash: job id -> scripted status reads counted (jobs with status_faults only)
    {P}:settings       hash: runtime setting -> JSON value (changed by POST /config)
    {P}:changes        stream of committed changes, read by every process (`RedisFollower`)
    {P}:leader         the ticker's lease (SET NX PX)

Beside the jobs, the records (written by the same `COMMIT` as the job changes of their transaction):

    {P}:secrets              hash: name -> secret (made once: HSETNX)
    {P}:apikeys              hash: key id -> the API key as JSON
    {P}:apikey-digests       hash: digest -> key id
    {P}:endpoints            hash: endpoint id -> the webhook endpoint as JSON
    {P}:user-endpoints:<uid> set of one user's endpoint ids
    {P}:delivery:<id>        hash: d (the delivery as JSON), s (its counter value, mapped by the commit)
    {P}:deliveries           sorted set of every delivery, score = creation order
    {P}:deliveries:due       sorted set of the filed pending deliveries, score = when due (`CLAIM` takes from it)
    {P}:deliveries:claimed   sorted set of claimed deliveries not put back yet, score = when claimed
    {P}:deliveries:done      sorted set of finished deliveries, score = when they finished (pruning walks it)
    {P}:replays              hash: replay key -> the stored answer as JSON
    {P}:replays:expiry       sorted set of replay keys, score = when they expire

A transaction's counter values are provisional (at or above `PROVISIONAL`) until the commit, which
reserves real ones with one INCRBY and maps them, so that queueing order is commit order.
"""

from __future__ import annotations

#: Counter values handed out inside a transaction start here; the commit maps them to real ones.
PROVISIONAL = 2**52

_RECORD = """
local function record(P, id)
  local r = redis.call('HMGET', P .. ':job:' .. id, 'v', 'd', 's', 'q', 't')
  if not r[1] then return {id} end
  return {id, r[1], r[2], r[3], r[4], r[5]}
end
"""

#: ARGV: prefix, job id, idempotency user, idempotency key, newest ('' | 'all' | 'user'), newest user.
#: Returns {seq, rev, #jobs, #lane1, #lane0, running {id, ends, started}..., heads {{id, score} of lane1, lane0,
#: finished}, places {{id, lane, rank}...} of the named jobs that are queued, idempotent id, newest id,
#: records {{id, v, d, s, q, t}...}}.
#: Lane heads come with their scores, the finished head with its record (expiry reads it on every call).
LOAD = _RECORD + """
local P = ARGV[1]
local want = {}
local function keep(id) if id and id ~= '' then want[#want + 1] = id end end
local running = {}
local entries = redis.call('ZRANGE', P .. ':running', 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local id = entries[i]
  running[#running + 1] = id
  running[#running + 1] = entries[i + 1]
  running[#running + 1] = redis.call('HGET', P .. ':job:' .. id, 't') or '-1'
end
local heads = {}
for i, key in ipairs({'lane:1', 'lane:0', 'finished'}) do
  local h = redis.call('ZRANGE', P .. ':' .. key, 0, 0, 'WITHSCORES')
  heads[i] = {h[1] or '', h[2] or ''}
  if i == 3 then keep(h[1]) end
end
local ranks = {}
local function ranked(id)
  if not id or id == '' then return end
  keep(id)
  for _, lane in ipairs({'1', '0'}) do
    local r = redis.call('ZRANK', P .. ':lane:' .. lane, id)
    if r then ranks[#ranks + 1] = {id, lane, r} end
  end
end
ranked(ARGV[2])
local idem = ''
if ARGV[4] ~= '' then
  idem = redis.call('HGET', P .. ':idem:' .. ARGV[3], ARGV[4]) or ''
  ranked(idem)
end
local newest = ''
if ARGV[5] ~= '' then
  local key = ARGV[5] == 'all' and (P .. ':jobs') or (P .. ':user:' .. ARGV[6])
  newest = redis.call('ZRANGE', key, -1, -1)[1] or ''
  ranked(newest)
end
local records = {}
for _, id in ipairs(want) do records[#records + 1] = record(P, id) end
return {redis.call('GET', P .. ':seq') or '0', redis.call('GET', P .. ':rev') or '0',
        redis.call('ZCARD', P .. ':jobs'), redis.call('ZCARD', P .. ':lane:1'), redis.call('ZCARD', P .. ':lane:0'),
        running, heads, ranks, idem, newest, records}
"""

#: ARGV: prefix, key (after the prefix), after score ('' = from the start), after member, count.
#: Returns {{id, score}..., records}: the next members in the sorted set's order, with their jobs.
PAGE = _RECORD + """
local P, key, after, member, count = ARGV[1], ARGV[1] .. ':' .. ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = {}
local low = '-inf'
if after ~= '' then
  local ties = redis.call('ZRANGEBYSCORE', key, after, after)
  for _, m in ipairs(ties) do
    if m > member and #out < 2 * count then out[#out + 1] = m; out[#out + 1] = after end
  end
  low = '(' .. after
end
if #out < 2 * count then
  local more = redis.call('ZRANGEBYSCORE', key, low, '+inf', 'WITHSCORES', 'LIMIT', 0, count - #out / 2)
  for _, x in ipairs(more) do out[#out + 1] = x end
end
local records = {}
for i = 1, #out, 2 do records[#records + 1] = record(P, out[i]) end
return {out, records}
"""

#: ARGV: prefix, ids... Returns the records (and each job's place in its lane: {lane, rank} or {}).
JOBS = _RECORD + """
local P = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local rank = {}
  for _, lane in ipairs({'1', '0'}) do
    local r = redis.call('ZRANK', P .. ':lane:' .. lane, id)
    if r then rank = {lane, r} end
  end
  out[#out + 1] = {record(P, id), rank}
end
return out
"""

#: ARGV: prefix, counters used, rev expected (-1: unchecked), lane 1 size, lane 0 size (-1: unchecked), origin,
#: changes (JSON or ''), settings (JSON object of name -> the value's JSON text, or ''), clear (every job removed
#: first, provided this many are stored; '': no), restore ('1': the stored settings dropped, every process back to
#: its start-up ones; ''), records (JSON list of record writes, or '': see below; the clear also removes every
#: delivery and replay, never keys, endpoints or secrets), #version guards, {id, version ('0': absent)}...,
#: #idempotency guards, {user, key, id ('': none)}..., then writes:
#:   'n'|'u', id, v, d, s, q, t, index ('1' | '0' | 'r' | 'f'), score, user, idempotency key  (new or updated job)
#:   'x', id, user, idempotency key                                                         (removed job)
#: Record writes, all strings (scores as Python writes floats, so nothing is rounded on the way), after the jobs':
#:   ['k', key id, JSON, digest] | ['K', key id]                                    (API key put | removed)
#:   ['e', endpoint id, JSON, user] | ['E', endpoint id]                             (webhook endpoint)
#:   ['d', id, JSON, counter, due ('': not filed), finished ('': pending), only if stored ('1' | '')] | ['D', id]
#:   ['r', replay key, JSON, expires] | ['R', replay key]                            (stored answer)
#: Returns {1, first real counter value} or {0, what changed}.
COMMIT = f"""
local P = ARGV[1]
local OFFSET = {PROVISIONAL}
local used, rev, lane1, lane0 = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local origin, changes, settings, clear, restore, records = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
if rev >= 0 and tonumber(redis.call('GET', P .. ':rev') or '0') ~= rev then return {{0, 'running'}} end
if lane1 >= 0 and redis.call('ZCARD', P .. ':lane:1') ~= lane1 then return {{0, 'premium lane'}} end
if lane0 >= 0 and redis.call('ZCARD', P .. ':lane:0') ~= lane0 then return {{0, 'free lane'}} end
if clear ~= '' and redis.call('ZCARD', P .. ':jobs') ~= tonumber(clear) then return {{0, 'jobs'}} end
local i = 13
for _ = 1, tonumber(ARGV[12]) do
  if (redis.call('HGET', P .. ':job:' .. ARGV[i], 'v') or '0') ~= ARGV[i + 1] then return {{0, 'job ' .. ARGV[i]}} end
  i = i + 2
end
local guards = tonumber(ARGV[i]); i = i + 1
for _ = 1, guards do
  if (redis.call('HGET', P .. ':idem:' .. ARGV[i], ARGV[i + 1]) or '') ~= ARGV[i + 2] then
    return {{0, 'idempotency key'}}
  end
  i = i + 3
end
local base = 0
if used > 0 then base = redis.call('INCRBY', P .. ':seq', used) - used end
local function real(x)
  local n = tonumber(x)
  if n >= OFFSET then return base + (n - OFFSET) end
  return n
end
local moved = false
if clear ~= '' then
  local users = {{}}
  for _, id in ipairs(redis.call('ZRANGE', P .. ':jobs', 0, -1)) do
    local data = redis.call('HGET', P .. ':job:' .. id, 'd')
    if data then users[cjson.decode(data)['user_id']] = true end
    redis.call('DEL', P .. ':job:' .. id)
  end
  for user in pairs(users) do redis.call('DEL', P .. ':user:' .. user, P .. ':idem:' .. user) end
  redis.call('DEL', P .. ':jobs', P .. ':lane:1', P .. ':lane:0', P .. ':running', P .. ':finished', P .. ':reads')
  for _, id in ipairs(redis.call('ZRANGE', P .. ':deliveries', 0, -1)) do redis.call('DEL', P .. ':delivery:' .. id) end
  redis.call('DEL', P .. ':deliveries', P .. ':deliveries:due', P .. ':deliveries:claimed', P .. ':deliveries:done',
             P .. ':replays', P .. ':replays:expiry')
  moved = true
end
while i <= #ARGV do
  local op, id = ARGV[i], ARGV[i + 1]
  local key = P .. ':job:' .. id
  if op == 'x' then
    local user, idem = ARGV[i + 2], ARGV[i + 3]
    redis.call('DEL', key)
    redis.call('ZREM', P .. ':jobs', id)
    redis.call('ZREM', P .. ':user:' .. user, id)
    redis.call('ZREM', P .. ':finished', id)
    redis.call('ZREM', P .. ':lane:1', id)
    redis.call('ZREM', P .. ':lane:0', id)
    if redis.call('ZREM', P .. ':running', id) == 1 then moved = true end
    redis.call('HDEL', P .. ':reads', id)
    if idem ~= '' and redis.call('HGET', P .. ':idem:' .. user, idem) == id then
      redis.call('HDEL', P .. ':idem:' .. user, idem)
    end
    i = i + 4
  else
    local s, q, t = real(ARGV[i + 4]), real(ARGV[i + 5]), real(ARGV[i + 6])
    local index, score, user, idem = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
    redis.call('HSET', key, 'v', ARGV[i + 2], 'd', ARGV[i + 3], 's', s, 'q', q, 't', t)
    redis.call('ZREM', P .. ':lane:1', id)
    redis.call('ZREM', P .. ':lane:0', id)
    redis.call('ZREM', P .. ':finished', id)
    if redis.call('ZREM', P .. ':running', id) == 1 then moved = true end
    if index == 'r' then
      redis.call('ZADD', P .. ':running', score, id)
      moved = true
    elseif index == 'f' then
      redis.call('ZADD', P .. ':finished', score, id)
    else
      redis.call('ZADD', P .. ':lane:' .. index, q, id)
    end
    if op == 'n' then
      redis.call('ZADD', P .. ':jobs', s, id)
      redis.call('ZADD', P .. ':user:' .. user, s, id)
      if idem ~= '' then redis.call('HSET', P .. ':idem:' .. user, idem, id) end
    end
    i = i + 11
  end
end
if records ~= '' then
  for _, op in ipairs(cjson.decode(records)) do
    local kind, id = op[1], op[2]
    if kind == 'k' or kind == 'K' then
      local old = redis.call('HGET', P .. ':apikeys', id)
      if old then
        local digest = cjson.decode(old)['digest']
        if redis.call('HGET', P .. ':apikey-digests', digest) == id then
          redis.call('HDEL', P .. ':apikey-digests', digest)
        end
      end
      if kind == 'k' then
        redis.call('HSET', P .. ':apikeys', id, op[3])
        redis.call('HSET', P .. ':apikey-digests', op[4], id)
      else
        redis.call('HDEL', P .. ':apikeys', id)
      end
    elseif kind == 'e' or kind == 'E' then
      local old = redis.call('HGET', P .. ':endpoints', id)
      if old then redis.call('SREM', P .. ':user-endpoints:' .. cjson.decode(old)['user_id'], id) end
      if kind == 'e' then
        redis.call('HSET', P .. ':endpoints', id, op[3])
        redis.call('SADD', P .. ':user-endpoints:' .. op[4], id)
      else
        redis.call('HDEL', P .. ':endpoints', id)
      end
    elseif kind == 'd' then
      local key = P .. ':delivery:' .. id
      if op[7] == '' or redis.call('EXISTS', key) == 1 then
        local s = real(op[4])
        redis.call('HSET', key, 'd', op[3], 's', s)
        redis.call('ZADD', P .. ':deliveries', s, id)
        redis.call('ZREM', P .. ':deliveries:claimed', id)
        if op[5] ~= '' then redis.call('ZADD', P .. ':deliveries:due', op[5], id)
        else redis.call('ZREM', P .. ':deliveries:due', id) end
        if op[6] ~= '' then redis.call('ZADD', P .. ':deliveries:done', op[6], id)
        else redis.call('ZREM', P .. ':deliveries:done', id) end
      end
    elseif kind == 'D' then
      redis.call('DEL', P .. ':delivery:' .. id)
      redis.call('ZREM', P .. ':deliveries', id)
      redis.call('ZREM', P .. ':deliveries:due', id)
      redis.call('ZREM', P .. ':deliveries:claimed', id)
      redis.call('ZREM', P .. ':deliveries:done', id)
    elseif kind == 'r' then
      redis.call('HSET', P .. ':replays', id, op[3])
      redis.call('ZADD', P .. ':replays:expiry', op[4], id)
    elseif kind == 'R' then
      redis.call('HDEL', P .. ':replays', id)
      redis.call('ZREM', P .. ':replays:expiry', id)
    end
  end
end
if moved then redis.call('INCR', P .. ':rev') end
if restore ~= '' then redis.call('DEL', P .. ':settings') end
if settings ~= '' then
  for name, value in pairs(cjson.decode(settings)) do
    redis.call('HSET', P .. ':settings', name, value)
  end
end
if changes ~= '' or settings ~= '' or restore ~= '' then
  redis.call('XADD', P .. ':changes', 'MAXLEN', '~', 10000, '*', 'o', origin, 'c', changes, 's', settings,
             'r', restore)
end
return {{1, base}}
"""

#: ARGV: prefix, job id, limit. Count one scripted status read of a stored job while fewer than `limit` were
#: counted; return its 0-based number, or -1 (the limit reached, or no such job).
TAKE_READ = """
local P, id, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', P .. ':job:' .. id) == 0 then return -1 end
local read = tonumber(redis.call('HGET', P .. ':reads', id) or '0')
if read >= limit then return -1 end
redis.call('HINCRBY', P .. ':reads', id, 1)
return read
"""

#: ARGV: prefix, name, a new random secret. Keep the secret under `name` unless one is kept; return the kept one.
MAKE_SECRET = """
redis.call('HSETNX', ARGV[1] .. ':secrets', ARGV[2], ARGV[3])
return redis.call('HGET', ARGV[1] .. ':secrets', ARGV[2])
"""  # noqa: S105 - a script that makes a secret, not a secret

#: ARGV: prefix, digest. Return the API key (JSON) whose digest it is, or nil.
KEY_BY_DIGEST = """
local id = redis.call('HGET', ARGV[1] .. ':apikey-digests', ARGV[2])
if not id then return nil end
return redis.call('HGET', ARGV[1] .. ':apikeys', id)
"""

#: ARGV: prefix, user. Return the user's webhook endpoints (JSON each).
ENDPOINTS_OF = """
local ids = redis.call('SMEMBERS', ARGV[1] .. ':user-endpoints:' .. ARGV[2])
if #ids == 0 then return {} end
local out = {}
for _, data in ipairs(redis.call('HMGET', ARGV[1] .. ':endpoints', unpack(ids))) do
  if data then out[#out + 1] = data end
end
return out
"""

#: ARGV: prefix. Return every delivery {id, d, s} in creation order.
DELIVERIES = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', ARGV[1] .. ':deliveries', 0, -1)) do
  local r = redis.call('HMGET', ARGV[1] .. ':delivery:' .. id, 'd', 's')
  if r[1] then out[#out + 1] = {id, r[1], r[2]} end
end
return out
"""

#: ARGV: prefix, now, limit, lease. Take up to `limit` deliveries due by `now` off the due index, earliest first, and
#: return them {id, due, d, s}: atomic, so no two processes ever claim the same delivery. A claimed one is noted
#: with when it was claimed until it is put back; one not put back within `lease` seconds (its process died
#: mid-attempt) is filed as due again first, so it is sent at least once.
CLAIM = """
local P = ARGV[1]
local stale = redis.call('ZRANGEBYSCORE', P .. ':deliveries:claimed', '-inf', tonumber(ARGV[2]) - tonumber(ARGV[4]),
                         'WITHSCORES')
for i = 1, #stale, 2 do
  redis.call('ZREM', P .. ':deliveries:claimed', stale[i])
  if redis.call('EXISTS', P .. ':delivery:' .. stale[i]) == 1 then
    redis.call('ZADD', P .. ':deliveries:due', stale[i + 1], stale[i])
  end
end
local due = redis.call('ZRANGEBYSCORE', P .. ':deliveries:due', '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0,
                       tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  redis.call('ZREM', P .. ':deliveries:due', due[i])
  redis.call('ZADD', P .. ':deliveries:claimed', ARGV[2], due[i])
  local r = redis.call('HMGET', P .. ':delivery:' .. due[i], 'd', 's')
  if r[1] then out[#out + 1] = {due[i], due[i + 1], r[1], r[2]} end
end
return out
"""

#: KEYS: the lease. ARGV: holder, milliseconds. Renew the lease only if this holder still has it.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

#: KEYS: the lease. ARGV: holder. Give the lease up only if this holder still has it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
