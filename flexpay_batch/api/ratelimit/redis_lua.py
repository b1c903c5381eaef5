"""The one Lua script behind ``RedisStore``: every operation on a key's hash, atomically.

GCRA: the hash keeps the *theoretical arrival time* ``tat`` (when the bucket would be empty
leaking at the adaptive ``rate``), so the level at ``now`` is ``max(0, tat - now) * rate``
and a grant of ``cost`` moves ``tat`` to ``max(tat, now) + cost / rate``. ``ntat`` is the
same at the configured rate (the floor of ``reset``). The clock is Redis ``TIME``, clamped so
it never runs backwards (``clk``); tests may pass ``now`` instead (``ARGV[2]`` not empty).

**Users configured differently.** Every run of a token shares its key, and two runs may be
configured with different limits (two jobs of one organisation, each with its own
``write_limit``). Each keeps to its own: the script works at the caller's rates. The levels
are what is shared, so ``tat`` and ``ntat`` are kept with the rates they were written at
(``trate``, ``nrate``) and re-expressed at the caller's on every call, the level unchanged.
The adaptive state is shared too, expressed against the configured rate of whoever wrote it
(``conf``): a rate, ceiling or cap equal to that configured rate means "nothing learnt
below the configuration" and reads as the caller's configured rate; one below it was learnt
from the server and reads as itself, capped at the caller's configured rate (``own``).

KEYS[1] the hash. ARGV: op, now ("" = TIME), capacity, configured rate, initial level, the
initial AIMD state (rate, ceiling, limit_cap, last_decrease, ceiling_checked_at, streak,
decreases, increases; "" for None), ttl in ms, then the op's own arguments:

- ``acquire cost [count]``: up to ``count`` grants of ``cost`` tokens each (default 1), as
  many as the bucket holds, all at ``now`` (the number granted in ``extra``); refused while
  paused or short of one grant's tokens (status 0, seconds to wait in ``extra``);
- ``fill level`` / ``reset level`` / ``pause seconds`` / ``get``;
- ``cas version`` + eight AIMD fields: replace the state if nobody changed it since.

Every reply is one string of comma-separated fields: status, now, level, pause_left, version,
the eight AIMD fields, extra, created; numbers as text (Redis would truncate Lua floats to
integers), and one bulk string instead of a fifteen-element array because parsing the array
cost the client more CPU than the rest of the round trip (a fifth of a row's, measured).
"""

SCRIPT = r"""
local key = KEYS[1]
local op = ARGV[1]
local capacity = tonumber(ARGV[3])
local configured = tonumber(ARGV[4])
local ttl = tonumber(ARGV[14])
local EPS = 1e-9
local AIMD = {'rate', 'ceiling', 'cap', 'ldec', 'cchk', 'streak', 'dec', 'inc'}

local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end

local created = 0
if redis.call('EXISTS', key) == 0 then
  created = 1
  local rate0 = tonumber(ARGV[6])
  redis.call('HSET', key, 'tat', now + tonumber(ARGV[5]) / rate0, 'ntat', now,
    'pause', 0, 'clk', now, 'ver', 0, 'trate', ARGV[6], 'nrate', ARGV[4], 'conf', ARGV[4])
  for i, name in ipairs(AIMD) do
    redis.call('HSET', key, name, ARGV[5 + i])
  end
end

local h = {}
local raw = redis.call('HGETALL', key)
for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
local clk = tonumber(h['clk'])
if now < clk then now = clk end
-- Keys written before ``conf``/``trate``/``nrate`` existed were all at one configuration.
local conf0 = tonumber(h['conf'] or configured)
local function own(v)
  v = tonumber(v)
  if conf0 == configured then return v end  -- the same configuration: the state as it is
  if v >= conf0 * (1 - EPS) then return configured end
  return math.min(v, configured)
end
local function level_at(t, r) return math.max(0, t - now) * r end
local function num(x) return string.format('%.17g', x) end

local rate = own(h['rate'])
-- The shared levels, re-expressed at this caller's rates.
local tat = now + level_at(tonumber(h['tat']), tonumber(h['trate'] or h['rate'])) / rate
local ntat = now + level_at(tonumber(h['ntat']), tonumber(h['nrate'] or configured)) / configured
local pause = tonumber(h['pause'])
local ver = tonumber(h['ver'])
local status = 1
local extra = 0

if op == 'acquire' then
  local cost = tonumber(ARGV[15])
  local wanted = math.max(1, math.floor(tonumber(ARGV[16] or '1') or 1))
  local level = level_at(tat, rate)
  if pause > now then
    status = 0
    extra = pause - now
  elseif level + cost > capacity + EPS then
    status = 0
    extra = (level + cost - capacity) / rate
  else
    local grants = math.min(wanted, math.floor((capacity + EPS - level) / cost))
    tat = math.max(tat, now) + grants * cost / rate
    ntat = math.max(ntat, now) + grants * cost / configured
    extra = grants
  end
elseif op == 'fill' then
  local wanted = math.min(tonumber(ARGV[15]), capacity)
  if wanted > level_at(tat, rate) then tat = now + wanted / rate end
elseif op == 'reset' then
  local wanted = math.min(capacity, math.max(tonumber(ARGV[15]), level_at(ntat, configured)))
  tat = now + wanted / rate
elseif op == 'pause' then
  pause = math.max(pause, now + tonumber(ARGV[15]))
elseif op == 'cas' then
  if tonumber(ARGV[15]) ~= ver then
    status = 0
  else
    local level = level_at(tat, rate)
    for i, name in ipairs(AIMD) do h[name] = ARGV[15 + i] end
    conf0 = configured  -- the state is now this caller's, against its configured rate
    rate = own(h['rate'])
    tat = now + level / rate
    ver = ver + 1
    for i, name in ipairs(AIMD) do redis.call('HSET', key, name, h[name]) end
    redis.call('HSET', key, 'conf', num(configured))
  end
elseif op ~= 'get' then
  return redis.error_reply('unknown limiter operation ' .. op)
end

redis.call('HSET', key, 'tat', num(tat), 'ntat', num(ntat), 'pause', num(pause),
  'clk', num(now), 'ver', ver, 'trate', num(rate), 'nrate', num(configured))
redis.call('PEXPIRE', key, ttl)
local reply = {tostring(status), num(now), num(level_at(tat, rate)),
  num(math.max(0, pause - now)), tostring(ver)}
-- The adaptive state as this caller reads it (``own``): it adapts from there, and what it
-- writes back with ``cas`` is against its own configured rate.
for i, name in ipairs(AIMD) do
  if i <= 3 then table.insert(reply, num(own(h[name]))) else table.insert(reply, h[name]) end
end
table.insert(reply, num(extra))
table.insert(reply, tostring(created))
return table.concat(reply, ',')
"""
