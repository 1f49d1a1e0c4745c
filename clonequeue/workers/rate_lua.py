"""The adaptive rate's two Lua scripts: every call's math in one round trip, on Redis's clock.

The state is one hash per namespace and token (``Keys.rate_state``):

``r``     the pace now (calls/s), shared by every worker on every host;
``w``     the pace at which the last 429 episode began (0: none seen yet), i.e. what
          was learned about the provider's limit;
``t``     when ``r`` was last advanced (µs, Redis clock);
``cut``   when the last episode began (µs);
``hold``  seconds of binding demand spent at the plateau since that episode;
``calls`` / ``useful`` / ``n429``: totals for the exporter and ``status --watch``.

How ``r`` moves (the shape of CUBIC's window: concave back, a plateau, a convex probe):

* a 429 that begins an episode sets ``w = r`` and cuts ``r`` to ``BETA * r``; 429s
  within ``EPISODE_S`` of it answer calls already sent at the old pace and cut nothing;
* after a cut, ``r`` climbs back towards ``PLATEAU * w`` (just under where 429s began)
  with time constant ``RECOVER_TAU_S`` (~2 s to get there);
* there it holds for ``HOLD_S`` seconds of binding demand, then probes upwards,
  doubling every ``PROBE_DOUBLING_S`` (``FRESH_DOUBLING_S`` before any 429 was seen),
  until the next 429 (or the ceiling) stops it.

``r`` only probes while demand binds (the next free slot is in the future): a fleet
that does not use its rate learns nothing by raising it, and would then meet the
provider with a burst. It never exceeds the ceiling (``CLONEQUEUE_API_RATE_LIMIT``
paced 2 % under) and never goes below ``MIN_RATE``.
"""

from __future__ import annotations

BETA = 0.85  # a 429 episode cuts the pace to this share of it
PLATEAU = 0.98  # ...then it climbs back to this share of where the 429s began
RECOVER_TAU_S = 0.6  # time constant of that climb
HOLD_S = 15.0  # seconds held there (while demand binds) before probing upwards
PROBE_DOUBLING_S = 4.0  # the probe doubles the pace this often
FRESH_DOUBLING_S = 2.0  # ...and this often while no 429 was ever seen (auto's start)
EPISODE_S = 0.25  # 429s this soon after a cut belong to its episode
MIN_RATE = 0.2  # calls/s: the floor, so a run of 429s never stops the fleet for good
MAX_RATE = 10_000.0  # calls/s: auto's ceiling, only so the numbers stay finite

_PARAMS = f"""
local BETA, PLATEAU, TAU = {BETA}, {PLATEAU}, {RECOVER_TAU_S}
local HOLD, DOUBLING, FRESH = {HOLD_S}, {PROBE_DOUBLING_S}, {FRESH_DOUBLING_S}
local EPISODE, MIN_RATE, MAX_RATE = {EPISODE_S * 1_000_000:.0f}, {MIN_RATE}, {MAX_RATE}
"""

# Read the state (starting it at ARGV start when absent) and bring r up to now.
# Shared by both scripts; ``binding`` says whether demand is above the pace.
_ADVANCE = """
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function load(key, start, now)
  local s = redis.call('HMGET', key, 'r', 'w', 't', 'cut', 'hold')
  return {r = tonumber(s[1]) or start, w = tonumber(s[2]) or 0, t = tonumber(s[3]) or now,
          cut = tonumber(s[4]) or 0, hold = tonumber(s[5]) or 0}
end

local function advance(st, now, binding, cap)
  local dt = math.min(math.max(now - st.t, 0) / 1000000, 1.0)
  st.t = now
  if now - st.cut >= EPISODE then
    local target = math.min(PLATEAU * st.w, cap)
    if st.w > 0 and st.r < target then
      st.r = target - (target - st.r) * math.exp(-dt / TAU)
      if st.r > target - 0.005 * st.w then st.r = target end
    elseif binding then
      if st.w > 0 and st.hold < HOLD then
        st.hold = st.hold + dt
      else
        st.r = st.r * 2 ^ (dt / (st.w > 0 and DOUBLING or FRESH))
      end
    end
  end
  st.r = math.max(math.min(st.r, cap), MIN_RATE)
end

local function save(key, st, ttl)
  redis.call('HSET', key, 'r', tostring(st.r), 'w', tostring(st.w), 't', string.format('%d', st.t),
             'cut', string.format('%d', st.cut), 'hold', tostring(st.hold))
  redis.call('EXPIRE', key, ttl)
end

local function cap_of(ceiling)
  if ceiling > 0 then return ceiling end
  return MAX_RATE
end
"""

# KEYS[1]: the timeline (the next free slot, µs); KEYS[2]: the rate state.
# ARGV: the ceiling (calls/s, paced; 0 = auto), the longest wait the caller accepts
# (µs), how many consecutive slots to reserve, useful calls to count, the start rate,
# the state's TTL (s). Returns {the wait before the first reserved slot (>= 0), or
# -(the wait) when it is longer than that and nothing was reserved; the interval
# (µs) used}.
RESERVE = (
    _PARAMS
    + _ADVANCE
    + """
local now = redis_now()
local ceiling, max_wait, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local st = load(KEYS[2], tonumber(ARGV[5]), now)
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
advance(st, now, slot > now, cap_of(ceiling))
save(KEYS[2], st, tonumber(ARGV[6]))
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[2], 'useful', ARGV[4]) end
local interval = math.max(math.floor(1000000 / st.r), 1)
local wait = slot - now
if wait > max_wait then
  return {-wait, interval}
end
redis.call('HINCRBY', KEYS[2], 'calls', count)
local ttl_ms = math.floor((wait + count * interval) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', slot + count * interval), 'PX', ttl_ms)
return {wait, interval}
"""
)

# KEYS[1]: the cooldown; KEYS[2]: the rate state. ARGV: the Retry-After (ms), the
# shortest Retry-After that pauses the whole fleet (ms), the ceiling, the start
# rate, the state's TTL (s). Returns the pace now in force (calls/s, as a string).
COOL_DOWN = (
    _PARAMS
    + _ADVANCE
    + """
local now = redis_now()
local ms, fleet_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local st = load(KEYS[2], tonumber(ARGV[4]), now)
redis.call('HINCRBY', KEYS[2], 'n429', 1)
if ms >= fleet_ms and ms > redis.call('PTTL', KEYS[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
if now - st.cut >= EPISODE then
  advance(st, now, false, cap_of(tonumber(ARGV[3])))
  st.w = st.r
  st.r = math.max(BETA * st.r, MIN_RATE)
  st.cut = now
  st.hold = 0
  save(KEYS[2], st, tonumber(ARGV[5]))
end
return tostring(st.r)
"""
)
