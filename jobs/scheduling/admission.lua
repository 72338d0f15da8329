-- One engine's scheduling state and every decision on it, atomically (jobs/scheduling/admission.py).
-- Every key starts with KEYS[1], the engine's prefix "<p>:sched:{<engine id>}", so all of them
-- hash to one slot and the script runs on a Redis Cluster too.
--
--   P:jobs            hash  job id -> {c class, t tenant, w weight, k tokens, d deadline ms, s state}
--                           state w (waiting), a (admitted: sent to a worker), r (running)
--   P:leases          zset  job id -> lease expiry (ms): the slots in use; an expired one is free
--   P:ten:<class>     zset  tenant -> its virtual time (fair share: the lowest goes next)
--   P:q:<class>:<t>   list  a tenant's waiting job ids, oldest first
--   P:clock:<class>   the virtual time of the last job started in the class
--   P:fin:<class>     hash  tenant -> the virtual time its next job may start at, kept while
--                           it has none waiting (so emptying its queue and refilling it gains
--                           nothing over keeping it full)
--   P:n:<class>       how many jobs of the class wait
--   P:dl              zset  waiting job id -> its queue deadline (ms)
--   P:bucket          hash  r, rt (requests bucket: level, ms), t, tt (tokens bucket)
--   P:hold            set while an upstream 429's Retry-After holds admissions (PX)
--   P:timer           set while a delayed admission is scheduled (PX), so only one is
--   P:why             why admissions last stopped: engine_full, rate_limited, held, or ""
--   P:dep:<id>        zset  job id -> lease expiry: the slots in use on one deployment
--   P:cool:<id>       set while a failing deployment is cooled down (PX): no job is placed on it
--
-- ARGV: now (ms), max concurrency, requests/min, tokens/min (0: none), admission lease (ms),
-- the engine's deployments ("id weight max" triples, space-separated; "" for none), op, then the
-- op's own arguments from ARGV[8]. Each op that can free or add work ends by admitting and
-- returns {admitted ids, expired ids, timer ms (0: none to schedule)} first.

local P = KEYS[1]
local now = tonumber(ARGV[1])
local max_concurrency, rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local admission_lease = tonumber(ARGV[5])
local deployments = {}
do
  local words = {}
  for word in string.gmatch(ARGV[6], '%S+') do words[#words + 1] = word end
  for i = 1, #words, 3 do
    deployments[#deployments + 1] = {id = words[i], w = tonumber(words[i + 1]), max = tonumber(words[i + 2])}
  end
end
local op = ARGV[7]
local CLASSES = {'interactive', 'default', 'batch'}
local BUDGET = 200 -- admissions per call, so one script never holds Redis for long

local function info_of(job)
  local raw = redis.call('HGET', P .. ':jobs', job)
  if raw then return cjson.decode(raw) end
  return nil
end

local function save(job, info)
  redis.call('HSET', P .. ':jobs', job, cjson.encode(info))
end

local function join(class, tenant)
  -- A tenant that starts waiting takes its turn at the class's clock, or later if its last job
  -- started so recently that its share is spent (start-time fair queueing): it neither jumps
  -- ahead of those waiting nor keeps a debt from long ago.
  local tenants = P .. ':ten:' .. class
  if redis.call('ZSCORE', tenants, tenant) then return end
  local clock = tonumber(redis.call('GET', P .. ':clock:' .. class) or '0')
  local finish = tonumber(redis.call('HGET', P .. ':fin:' .. class, tenant) or '0')
  redis.call('HDEL', P .. ':fin:' .. class, tenant)
  redis.call('ZADD', tenants, math.max(clock, finish), tenant)
end

local function wait(job, info, front)
  info.s = 'w'
  save(job, info)
  local queue = P .. ':q:' .. info.c .. ':' .. info.t
  if front then redis.call('LPUSH', queue, job) else redis.call('RPUSH', queue, job) end
  redis.call('INCR', P .. ':n:' .. info.c)
  if info.d > 0 then redis.call('ZADD', P .. ':dl', info.d, job) end
  join(info.c, info.t)
end

local function free(job, info)
  -- The job's slot, on the engine and on its deployment.
  redis.call('ZREM', P .. ':leases', job)
  if info and info.p then redis.call('ZREM', P .. ':dep:' .. info.p, job) end
end

local function lease(job, info, expiry)
  redis.call('ZADD', P .. ':leases', expiry, job)
  if info and info.p then redis.call('ZADD', P .. ':dep:' .. info.p, expiry, job) end
end

-- The deployment with room whose load after one more job is lowest for its weight (so weights
-- share the engine's jobs in proportion), skipping cooled ones; nil when none has room.
local function placement()
  local best, best_load = nil, nil
  for _, d in ipairs(deployments) do
    local slots = P .. ':dep:' .. d.id
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
    local used = redis.call('ZCARD', slots)
    if redis.call('EXISTS', P .. ':cool:' .. d.id) == 0 and (d.max == 0 or used < d.max) then
      local load = (used + 1) / d.w
      if best_load == nil or load < best_load then best, best_load = d.id, load end
    end
  end
  return best
end

local function unwait(job, info)
  -- Out of the waiting counts; its list entry is skipped when it comes up.
  redis.call('DECR', P .. ':n:' .. info.c)
  redis.call('ZREM', P .. ':dl', job)
end

local function level(field, stamp, capacity)
  local b = redis.call('HMGET', P .. ':bucket', field, stamp)
  local value, at = tonumber(b[1]), tonumber(b[2])
  if value == nil then return capacity end
  return math.min(capacity, value + (now - at) * capacity / 60000)
end

-- The next waiting job: the highest class with any, and in it the tenant of lowest virtual
-- time. Entries of jobs cancelled or expired meanwhile are dropped on the way; a job found past
-- its deadline is taken out and reported.
local function next_waiting(expired)
  for _, class in ipairs(CLASSES) do
    local tenants = P .. ':ten:' .. class
    while true do
      local top = redis.call('ZRANGE', tenants, 0, 0)
      if #top == 0 then break end
      local queue = P .. ':q:' .. class .. ':' .. top[1]
      local job = redis.call('LINDEX', queue, 0)
      if not job then
        redis.call('ZREM', tenants, top[1])
      else
        local info = info_of(job)
        if info and info.s == 'w' and info.d > 0 and info.d <= now then
          unwait(job, info)
          redis.call('HDEL', P .. ':jobs', job)
          expired[#expired + 1] = job
          info = nil
        end
        if info and info.s == 'w' then return class, top[1], job, info end
        redis.call('LPOP', queue)
      end
    end
  end
  return nil
end

local function start_turn(class, tenant, job, info)
  local tenants, queue = P .. ':ten:' .. class, P .. ':q:' .. class .. ':' .. tenant
  redis.call('LPOP', queue)
  local vt = tonumber(redis.call('ZSCORE', tenants, tenant))
  redis.call('SET', P .. ':clock:' .. class, vt)
  if redis.call('LLEN', queue) == 0 then
    redis.call('ZREM', tenants, tenant)
    redis.call('HSET', P .. ':fin:' .. class, tenant, vt + 1 / info.w)
  else
    redis.call('ZADD', tenants, vt + 1 / info.w, tenant)
  end
  unwait(job, info)
end

local function admit()
  local admitted, expired = {}, {}
  local why, retry = '', 0
  local held = redis.call('PTTL', P .. ':hold')
  if held > 0 then
    why, retry = 'held', held
  else
    -- Slots whose lease ran out come back: a dead worker's, and an admitted job's whose message
    -- never reached a worker (lost with a broker, or a web process that died before sending
    -- it), which waits again, first in its owner's queue, and is sent again when admitted.
    for _, job in ipairs(redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', now, 'LIMIT', 0, 500)) do
      local info = info_of(job)
      free(job, info)
      if info and info.s == 'a' then wait(job, info, true) end
    end
    while #admitted < BUDGET do
      if max_concurrency > 0 and redis.call('ZCARD', P .. ':leases') >= max_concurrency then
        why = 'engine_full'
        break
      end
      local class, tenant, job, info = next_waiting(expired)
      if not class then break end
      local deployment = nil
      if #deployments > 0 then
        deployment = placement()
        if not deployment then
          why = 'engine_full'
          break
        end
      end
      local requests, tokens
      if rpm > 0 then
        requests = level('r', 'rt', rpm)
        if requests < 1 then
          why, retry = 'rate_limited', math.ceil((1 - requests) * 60000 / rpm)
          break
        end
      end
      if tpm > 0 then
        tokens = level('t', 'tt', tpm)
        local need = math.min(info.k, tpm) -- a job larger than a minute's tokens still runs, alone
        if tokens < need then
          why, retry = 'rate_limited', math.ceil((need - tokens) * 60000 / tpm)
          break
        end
      end
      if requests then redis.call('HSET', P .. ':bucket', 'r', requests - 1, 'rt', now) end
      if tokens then redis.call('HSET', P .. ':bucket', 't', tokens - info.k, 'tt', now) end
      start_turn(class, tenant, job, info)
      info.s, info.p = 'a', deployment
      save(job, info)
      lease(job, info, now + admission_lease)
      admitted[#admitted + 1] = job
    end
  end
  redis.call('SET', P .. ':why', why)
  local timer = 0
  if retry > 0 and redis.call('SET', P .. ':timer', '1', 'PX', retry, 'NX') then timer = retry end
  return {admitted, expired, timer}
end

if op == 'enqueue' then
  -- ARGV[8] job id, ARGV[9] its info (JSON), ARGV[10] '1' to go first in its tenant's queue
  -- (a job sent back: its message was lost, its worker died before any output, or its
  -- deployment failed before the first chunk: its tries are counted).
  local job = ARGV[8]
  local known = info_of(job)
  if known and known.s == 'w' then return admit() end -- already waiting: once is enough
  free(job, known)
  local info = cjson.decode(ARGV[9])
  if known then info.tries = (known.tries or 0) + 1 end
  wait(job, info, ARGV[10] == '1')
  return admit()
elseif op == 'admit' then
  return admit()
elseif op == 'release' then
  -- ARGV[8] job id, ARGV[9] the tokens it used (-1: unknown). Its slot is free, its token
  -- estimate corrected; a job still waiting (cancelled) leaves the queue.
  local job, used = ARGV[8], tonumber(ARGV[9])
  local info = info_of(job)
  free(job, info)
  if info then
    if info.s == 'w' then unwait(job, info) end
    if info.s ~= 'w' and tpm > 0 and used >= 0 then
      redis.call('HSET', P .. ':bucket', 't', level('t', 'tt', tpm) + info.k - used, 'tt', now)
    end
    redis.call('HDEL', P .. ':jobs', job)
  end
  return admit()
elseif op == 'take' then
  -- A worker got the job's message. ARGV[8] job id, ARGV[9] running lease (ms). Returns
  -- {1 or 0 (run it or not), admitted, expired, timer, its deployment ('' for none), its
  -- tries}. A job whose admission lease ran out before a worker took it (its slot may have
  -- gone to another) waits again, first in line.
  local job, running = ARGV[8], tonumber(ARGV[9])
  local info = info_of(job)
  local leased = redis.call('ZSCORE', P .. ':leases', job)
  if leased and tonumber(leased) <= now then leased = nil end
  if leased or not info or info.s == 'r' then
    -- Unknown (the scheduler's state was lost) or a repeated delivery of a running job: the
    -- job row's claim decides, as without a scheduler.
    if not info then -- kept from now on, so that renewals and the release find it
      info = {c = 'default', t = '', w = 1, k = 0, d = 0}
      if #deployments > 0 then info.p = placement() end
    end
    info.s = 'r'
    save(job, info)
    lease(job, info, now + running)
    return {1, {}, {}, 0, info.p or '', info.tries or 0}
  end
  if info.s == 'a' then
    free(job, info)
    wait(job, info, true)
  end
  local result = admit()
  local others, run = {}, 0
  for _, id in ipairs(result[1]) do
    if id == job then run = 1 else others[#others + 1] = id end
  end
  if run == 1 then
    info = info_of(job)
    info.s = 'r'
    save(job, info)
    lease(job, info, now + running)
  end
  return {run, others, result[2], result[3], info.p or '', info.tries or 0}
elseif op == 'renew' then
  -- ARGV[8] running lease (ms), ARGV[9..] the job ids this worker runs.
  local running = tonumber(ARGV[8])
  for i = 9, #ARGV do
    local info = info_of(ARGV[i])
    if info and info.s == 'r' then lease(ARGV[i], info, now + running) end
  end
  return #ARGV - 8
elseif op == 'tick' then
  -- The sweeper's: jobs past their queue deadline leave the queue (reported expired), then an
  -- admission (slots of dead workers come back by lease expiry, with no release to wake it).
  local due = redis.call('ZRANGEBYSCORE', P .. ':dl', '-inf', now, 'LIMIT', 0, 500)
  local expired = {}
  for _, job in ipairs(due) do
    local info = info_of(job)
    redis.call('ZREM', P .. ':dl', job)
    if info and info.s == 'w' then
      unwait(job, info)
      redis.call('HDEL', P .. ':jobs', job)
      expired[#expired + 1] = job
    end
  end
  local result = admit()
  for _, job in ipairs(result[2]) do expired[#expired + 1] = job end
  return {result[1], expired, result[3]}
elseif op == 'hold' then
  -- ARGV[8] ms: an upstream asked us to wait (429 Retry-After); a shorter hold never cuts a
  -- longer one.
  local ms = tonumber(ARGV[8])
  if redis.call('PTTL', P .. ':hold') < ms then redis.call('SET', P .. ':hold', '1', 'PX', ms) end
  local timer = 0 -- the admission that ends the hold (a timer set earlier fires, and sets the next)
  if redis.call('SET', P .. ':timer', '1', 'PX', ms, 'NX') then timer = ms end
  return {{}, {}, timer}
elseif op == 'drain' then
  -- The engine has no limit any more: every waiting job leaves the queue, returned to be sent
  -- to the workers at once (in class order), and the queue's state is dropped.
  local ids = {}
  for _, class in ipairs(CLASSES) do
    local tenants = redis.call('ZRANGE', P .. ':ten:' .. class, 0, -1)
    for _, tenant in ipairs(tenants) do
      local queue = P .. ':q:' .. class .. ':' .. tenant
      for _, job in ipairs(redis.call('LRANGE', queue, 0, -1)) do
        local info = info_of(job)
        if info and info.s == 'w' then ids[#ids + 1] = job end
      end
      redis.call('DEL', queue)
    end
    redis.call('DEL', P .. ':ten:' .. class, P .. ':clock:' .. class, P .. ':n:' .. class, P .. ':fin:' .. class)
  end
  redis.call('DEL', P .. ':jobs', P .. ':leases', P .. ':dl', P .. ':bucket', P .. ':hold', P .. ':timer', P .. ':why')
  return ids
elseif op == 'cool' then
  -- ARGV[8] deployment id, ARGV[9] ms: it failed; no job is placed on it until then.
  redis.call('SET', P .. ':cool:' .. ARGV[8], '1', 'PX', tonumber(ARGV[9]))
  return 1
elseif op == 'unknown' then
  -- ARGV[8..] job ids: those the engine's queue does not hold (waiting, admitted or running).
  local unknown = {}
  for i = 8, #ARGV do
    if redis.call('HEXISTS', P .. ':jobs', ARGV[i]) == 0 then unknown[#unknown + 1] = ARGV[i] end
  end
  return unknown
elseif op == 'status' then
  -- ARGV[8] job id (or ''): {its state, its class, why admissions stopped, jobs ahead of it in
  -- its owner's queue (-1: not waiting), leases in use, and per class how many wait}.
  local job = ARGV[8]
  local info = job ~= '' and info_of(job) or nil
  local state, class, ahead = '', '', -1
  if info then
    state, class = info.s, info.c
    if info.s == 'w' then
      -- Counting only the jobs still waiting: the entries of cancelled or expired ones stay in
      -- the list until they come up.
      local queue = P .. ':q:' .. info.c .. ':' .. info.t
      local at = redis.call('LPOS', queue, job)
      if at then
        ahead = 0
        local before = at > 0 and redis.call('LRANGE', queue, 0, at - 1) or {}
        for i = 1, #before, 500 do
          local infos = redis.call('HMGET', P .. ':jobs', unpack(before, i, math.min(i + 499, #before)))
          for _, raw in ipairs(infos) do
            if raw and cjson.decode(raw).s == 'w' then ahead = ahead + 1 end
          end
        end
      end
    end
  end
  local waiting = {}
  for _, c in ipairs(CLASSES) do
    waiting[#waiting + 1] = tonumber(redis.call('GET', P .. ':n:' .. c) or '0')
  end
  redis.call('ZREMRANGEBYSCORE', P .. ':leases', '-inf', now)
  return {state, class, redis.call('GET', P .. ':why') or '', ahead,
          redis.call('ZCARD', P .. ':leases'), waiting}
end
return redis.error_reply('unknown op ' .. tostring(op))
