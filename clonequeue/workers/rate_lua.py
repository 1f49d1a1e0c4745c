"""The adaptive rate's two Lua scripts: every call's math in one round trip, on Redis's clock.

The state is one hash per namespace and token (``Keys.rate_state``):

``r``     the pace now (calls/s), shared by every worker on every host;
``w``     the pace at which the last 429 episode began (0: none seen yet), i.e. what
          was learned about the provider's limit;
``t``     when ``r`` was last advanced (µs, Redis clock);
``cut``   when the last episode (or its escalation) began (µs);
``hold``  seconds of binding demand spent at the plateau since that episode;
``hb``    how long to hold there before probing (s);
``e429``  429s counted in the current episode;
``seq`` / ``cf`` / ``cp``: the number of the last cut, its stretch factor (old pace /
          new pace) and its pause (µs): how workers move the slots they already hold;
``hi`` / ``hiat``: the pace where the last fall began (0: none) and when it fell (µs);
``born``  when the state began (µs): a pace that ran a whole window without a 429 worked;
``l429``  when the last stray 429 came (µs; below); ``c429``: ``calls`` at the last 429;
``edge``  the share of the window's count that the pace keeps with no 429 (arrival
          jitter's toll: 1 / (1 + J) against a sliding window), learned at the plateau;
``calls`` / ``useful`` / ``n429`` / ``nfail``: totals for the exporter and ``status
          --watch`` (``nfail``: calls with no usable answer: 5xx, timeouts, no connection).

How ``r`` moves (the shape of CUBIC's window: concave back, a plateau, a convex probe):

* a 429 that begins an episode sets ``w = r`` (while ``auto`` still doubles from its
  start, or a probe climbs: the pace of a second before, as the calls follow the
  pace up to half a second late and a one-second window counts them half a second
  late again; a doubling overshoot is never escalated); 429s within ``EPISODE_S`` of
  it answer calls already sent at the old pace and cut nothing;
* near where the last episode began (``r >= NEAR * w``: at the plateau, or probing
  above it) it cuts ``r`` a little, to ``GENTLE * r``: arrivals that jitter against
  the provider's sliding window draw an isolated 429 just under its limit, and each
  one cutting 10 % held the pace at ~0.9x; since ``w`` moves down to where the 429
  came (1 % under it when the plateau drew it: the plateau moves 2 % a step), the
  plateau follows the edge down until 429s are rare. Far below ``w`` (or
  the first 429 ever) it cuts to ``BETA * r``;
* the ``STREAK_N``-th 429 within one episode escalates it: jitter over the edge
  draws 429s one at a time, not at the pace itself, so the limit fell far (a
  provider under load halving it) and every further call at the old pace meets a
  full window. It cuts to ``DEEP * w``, pauses the fleet for the Retry-After (at most
  ``STREAK_PAUSE_S``: the provider's window must drain to ``DEEP`` of what it held)
  and starts again from there
  (``w = r``: it holds there and probes upwards; starting over as ``auto`` does,
  doubling, overshot and escalated again, over and over). Escalating only when 429s
  went on after the episode's cut (as until issue 15's second round) let ~15 calls
  meet the halved limit; a burst of late threads that escalates wrongly now costs a
  few seconds, as the probe climbs back to ``hi`` fast (below). Below a fall
  already (``hi`` set), that evidence is still required (``STREAK_N`` 429s in an
  episode, then more within ``STREAK_S``): the calls in the air when a fall's cut
  came answer 429 in a run too, and with 2 workers escalating on them halved the
  pace twice;
* every cut stretches the slots already reserved on the timeline by the same factor
  (and shifts them by the pause), and workers move the slots they hold likewise
  (workers/limiter.py): a cut acts on the next call, not after the slots threads
  were already waiting for (up to ``AHEAD_S`` per process), which at the old pace met
  the provider as 429s.
  Slots moved past ``CUT_KEEP_S`` after the cut are given up, and the timeline
  starts there (or after the pause);
* after a cut, ``r`` climbs back towards ``PLATEAU * w`` (just under where 429s began)
  with time constant ``RECOVER_TAU_S`` (~2 s to get there);
* there it holds for ``HOLD_S`` seconds of binding demand (twice as long each time
  429s began within 3 % of where they did last time, up to ``HOLD_MAX_S`` or
  ``HOLD_MAX_CALLS`` calls at ``w``, whichever is longer: a limit that stays put is
  probed less often, and a low one no more often per call), then probes upwards, slowly
  at first (``PROBE_START`` per s) and faster the longer no 429 comes (+``PROBE_ACCEL``
  per s each second: a limit that doubled is found in ~8 s), doubling every
  ``FRESH_DOUBLING_S`` while no 429 was ever seen (auto's start), until the next 429
  (or the ceiling) stops it;
* after a fall (an escalated episode) the pace it fell from is kept as ``hi`` for
  ``BACK_KEEP_S`` (if it ever worked; a ceiling met with 429s before a window of calls
  went through keeps the pace it fell to: nothing to climb back to, but below a fall
  all the same): below it the hold is short (``HOLD_BACK_S``, never doubled) and
  the probe climbs back fast (doubling every ``BACK_DOUBLING_S``): a provider that
  halved its limit under load gives it back, and each second found late costs the
  fleet half its calls. (Doubling the hold after each probe that met a 429, up to 4
  or 8 s, saved 1-3 429s while the limit stayed low, and found the rise 3-5 s later:
  issue 15's third round, left out.) Workers hold only ``AHEAD_S`` of slots (workers/limiter.py),
  so a probe past the limit meets its 429 within a second and costs one or two; that
  429 steps the pace back to where it was a second before (``w``), not 5 % under the
  overshoot (even near ``hi``). Reaching ``hi`` ends it, and ``hi`` is then the
  learned limit again (``w``, held ``HOLD_S`` before the usual probe); a 429 near
  ``hi``, or ``BACK_KEEP_S`` without reaching it, ends it too;
* a probe above the plateau whose 429 puts that pace within ``NO_ROOM`` above
  ``w`` found no more room: ``w`` stays, so the pace climbs back to the plateau the
  probe set out from, which held. Learning that 1 % more put the plateau over the
  jitter's edge, to walk back down one 429 a step (issue 15's fifth round); a band of
  3 % kept a limit learned 2.5 % under the edge there for good (sixth round);
* a stray 429 cuts nothing: at rest (the plateau, or the ceiling when no 429 came
  lower: a probe that reached it from a learned limit below has not rested), not
  below a fall, ``QUIET_CALLS`` calls or more after the last 429, and no overshoot in
  the window's count, it is an arrival jittered over the edge of a limit that pace
  keeps. It is counted, and ``l429`` marks it: a 429 within ``EPISODE_S`` after it is
  its episode's second, so a fall still escalates at the third;
* what the provider's window held when it refused a call bounds every estimate
  above: the reservations log their slots (``Keys.rate_sends``, per 50 ms), the
  thread that met the 429 says when it sent the call, and our slots in the second
  before are what the window counted. A ceiling 1.5x too high, met at the start,
  is learned as the limit itself (it was learned as the ceiling, and the run of 429s
  halved the pace: 8 s at ~30/s in issue 15's bench); it is an overshoot, never
  escalated, and the fleet pauses while the excess ages out of the window. Not used
  when our calls were under half the pace (too few to fill the window: another
  client's calls, or a stray 429) or a cut in the last 2 s may have moved the slots.
  The count is the limit, not the pace that keeps it: it is learned at ``edge``, the
  share the plateau's own 429s taught (``EDGE_MIN``).

``r`` only probes while demand binds (the next free slot is ``BINDING_WAIT_S`` off: a
slot only a lease ahead is no queue of calls): a fleet
that does not use its rate learns nothing by raising it, and would then meet the
provider with a burst. It never exceeds the ceiling (``CLONEQUEUE_API_RATE_LIMIT``
paced 2 % under) and never goes below ``MIN_RATE``. Numbers are stored with 17
significant digits: with Lua's default 14 a pace saved at its plateau could read
back a hair under it, and the climb back (not the hold) then ran on every call, for
good, so the probe never started again (the bug issue 15's first bench found).
"""

from __future__ import annotations

import math

BETA = 0.9  # a 429 episode cuts the pace to this share of it (far from the learned limit)...
GENTLE = 0.95  # ...to this share near it (an arrival jittered over the edge, not a fall)
NEAR = 0.9  # "near": at this share of the pace where the last episode began, or more
DEEP = 0.5  # ...an escalated one to this share of where the episode began
# This many 429s within one episode escalate it (5 until issue 15's fourth round: a
# fallen limit's window refuses every call, so 3 is as sure and costs 2 fewer 429s)...
STREAK_N = 3
STREAK_S = 1.0  # ...below a fall, only if 429s go on this soon after its cut
# An escalation pauses the fleet for the Retry-After, at most this: a one-second window
# that took calls at the old pace until the fall holds (1 - DEEP) s later only DEEP of
# them, so the new pace meets no full window. A whole second (as until issue 15's third
# round) left the API idle for half a second more at each fall.
STREAK_PAUSE_S = 1.0 - DEEP
# ...then it climbs back to this share of where the 429s began (0.98 until issue 15's
# sixth round: with 429s learned where the window's count puts them, 1 % under is
# enough, and at 20 ms of jitter the after-phase ran at 0.85-0.89x of the limit)
PLATEAU = 0.99
RECOVER_TAU_S = 0.6  # time constant of that climb
HOLD_S = 4.0  # seconds held there (while demand binds) before probing upwards...
HOLD_MAX_S = 12.0  # ...doubling, up to this, each time 429s begin where they did before,
# or up to this many calls at the learned limit if that is longer: each probe costs a
# 429, so a hold in seconds made the 429s' share grow as the limit shrank (2-3 % at an
# 8/s limit, against ~0.3 % at 40/s: one per probe either way; the QA pass saw 12-20 a
# minute at 7/s). At 40/s the two are the same 12 s.
HOLD_MAX_CALLS = 480
SAME_LIMIT = 0.97  # "where they did before": at this share of the last episode's pace or more
NO_ROOM = 0.99  # a probe's 429 this near above the learned limit found no more room
PROBE_START = 0.005  # the probe's growth (per s, logarithmic) when it begins...
PROBE_ACCEL = 0.02  # ...and how much it grows each second of probing
FRESH_DOUBLING_S = 2.0  # ...and this often while no 429 was ever seen (auto's start)
EPISODE_S = 0.25  # 429s this soon after a cut belong to its episode
BACK_DOUBLING_S = 2.0  # below the pace a fall began from, the probe doubles this often...
BACK_KEEP_S = 120.0  # ...for this long after the fall
HOLD_BACK_S = 2.0  # ...and each probe there follows this long a hold
BACK_LATE_FACTOR = 2 ** (-1.0 / BACK_DOUBLING_S)  # the climb's pace a second before, / now
# A cut keeps the reserved slots it moves to at most this far after it (the rest are
# given up by their holders, and the timeline starts there): stretched whole, ~2 s of
# slots at a halved pace reached 4 s out, given up one by one, and left the API idle.
# A thread may hold a slot up to dispatch.bounds.TURN_WAIT_S ahead (a process holds at
# most AHEAD_S of them, so only behind other processes' slots or a pause), and a cut
# gives that up like any other it moves past this.
CUT_KEEP_S = 2.0
# Demand binds when the next free slot is this far off: a queue of calls. Leases span
# at most LEASE_S per process while demand is below the pace, so they never look like one.
BINDING_WAIT_S = 0.25
WORKED_S = 1.0  # a pace that ran this long with no 429 worked (the provider's window)
# The sends log: slots reserved, counted per SEND_BUCKET_S of slot time in a ring of
# SEND_RING buckets (3.2 s): what the provider's window held when it refused a call.
SEND_BUCKET_S = 0.05
SEND_RING = 64
# A 429 at a pace at rest (its plateau, or the ceiling) after this many calls with none
# is a stray: an arrival jittered over the edge of a limit that pace keeps (at most one
# 429 per this many calls: 0.25 %). It is counted, and nothing is cut or learned: cut
# 5 % and learned 2 % lower, the ceiling's 39.2/s at 20 ms of jitter (the edge's own
# share) ran at 37.6/s for the 8 s hold after its one 429 in 20 s (issue 15's sixth round).
QUIET_CALLS = 400
# The window's count at a 429 is the provider's limit, not the pace that keeps it: the
# jitter's edge is below it (0.952x at 50 ms). Each 429 the plateau draws takes this
# share down by PLATEAU (each probe that finds room gives that back), and what a count
# teaches is that share of it: learning the count itself, the plateau sat over the edge
# after every probe and walked back down (2-3 429s a probe in issue 15's low phase).
EDGE_MIN = 0.9
MIN_RATE = 0.2  # calls/s: the floor, so a run of 429s never stops the fleet for good
MAX_RATE = 10_000.0  # calls/s: auto's ceiling, only so the numbers stay finite

_PARAMS = f"""
local BETA, DEEP, PLATEAU, TAU = {BETA}, {DEEP}, {PLATEAU}, {RECOVER_TAU_S}
local GENTLE, NEAR, KEEP = {GENTLE}, {NEAR}, {CUT_KEEP_S * 1_000_000:.0f}
local STREAK_N, STREAK = {STREAK_N}, {STREAK_S * 1_000_000:.0f}
local BINDING = {BINDING_WAIT_S * 1_000_000:.0f}
local STREAK_PAUSE = {STREAK_PAUSE_S * 1_000_000:.0f}
local HOLD, PROBE0, ACCEL, FRESH = {HOLD_S}, {PROBE_START}, {PROBE_ACCEL}, {FRESH_DOUBLING_S}
local HOLD_MAX, SAME, NO_ROOM = {HOLD_MAX_S}, {SAME_LIMIT}, {NO_ROOM}
local HOLD_MAX_CALLS = {HOLD_MAX_CALLS}
local FRESH_BACK = {2 ** (-1.0 / FRESH_DOUBLING_S)}
local EPISODE, MIN_RATE, MAX_RATE = {EPISODE_S * 1_000_000:.0f}, {MIN_RATE}, {MAX_RATE}
local BACK, BACK_KEEP = {math.log(2) / BACK_DOUBLING_S}, {BACK_KEEP_S * 1_000_000:.0f}
local HOLD_BACK = {HOLD_BACK_S}
local WINDOW = {WORKED_S * 1_000_000:.0f}
local BACK_LATE = {BACK_LATE_FACTOR}
local BUCKET, RING = {SEND_BUCKET_S * 1_000_000:.0f}, {SEND_RING}
local QUIET, EDGE_MIN = {QUIET_CALLS}, {EDGE_MIN}
"""

# Read the state (starting it at ARGV start when absent) and bring r up to now.
# Shared by both scripts; ``binding`` says whether demand is above the pace.
_ADVANCE = """
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function load(key, start, now)
  local s = redis.call('HMGET', key, 'r', 'w', 't', 'cut', 'hold', 'e429', 'hb', 'fresh',
                       'hi', 'hiat', 'born', 'l429', 'edge')
  local st = {r = tonumber(s[1]) or start, w = tonumber(s[2]) or 0, t = tonumber(s[3]) or now,
              cut = tonumber(s[4]) or 0, hold = tonumber(s[5]) or 0,
              e429 = tonumber(s[6]) or 0, hb = tonumber(s[7]) or HOLD,
              fresh = tonumber(s[8]) or 0, hi = tonumber(s[9]) or 0,
              hiat = tonumber(s[10]) or 0, born = tonumber(s[11]) or now,
              l429 = tonumber(s[12]) or 0, edge = tonumber(s[13]) or 1}
  if now - st.hiat > BACK_KEEP then st.hi = 0 end
  return st
end

-- where the pace rests after a cut: just under where the 429s began, at most the ceiling
local function plateau_of(st, cap)
  return math.min(PLATEAU * st.w, cap)
end

local function advance(st, now, binding, cap)
  local dt = math.min(math.max(now - st.t, 0) / 1000000, 1.0)
  st.t = now
  if now - st.cut >= EPISODE then
    local target = plateau_of(st, cap)
    local near = target - 0.005 * st.w
    if st.w > 0 and st.r < target then
      st.r = target - (target - st.r) * math.exp(-dt / TAU)
      if st.r >= near then st.r = target end
    end
    -- Not an `else`: a pace that reached the plateau in this step, or reads back a
    -- hair under it, holds and then probes like one that was there all along.
    if binding and (st.w == 0 or st.r >= near) then
      if st.w == 0 then
        st.r = st.r * 2 ^ (dt / FRESH)
      elseif st.hold < st.hb then
        st.hold = st.hold + dt
      elseif st.r < st.hi then
        st.r = math.min(st.r * math.exp(BACK * dt), st.hi)
        st.hold = st.hold + dt
        if st.r >= st.hi then
          -- back where it fell from: that is the limit learned again; hold there
          st.w, st.hi, st.hold, st.hb = st.hi, 0, 0, HOLD
        end
      else
        st.r = st.r * math.exp((PROBE0 + ACCEL * (st.hold - st.hb)) * dt)
        st.hold = st.hold + dt
      end
    end
  end
  st.r = math.max(math.min(st.r, cap), MIN_RATE)
end

local function num(x)
  return string.format('%.17g', x)
end

local function save(key, st, ttl)
  redis.call('HSET', key, 'r', num(st.r), 'w', num(st.w), 't', string.format('%d', st.t),
             'cut', string.format('%d', st.cut), 'hold', num(st.hold),
             'e429', string.format('%d', st.e429), 'hb', num(st.hb),
             'fresh', string.format('%d', st.fresh), 'hi', num(st.hi),
             'hiat', string.format('%d', st.hiat), 'born', string.format('%d', st.born),
             'l429', string.format('%d', st.l429), 'edge', num(st.edge))
  redis.call('EXPIRE', key, ttl)
end

-- What workers need to move the slots they hold after the last cut: its number, its
-- age (µs), its stretch factor (x 1e6) and its pause (µs).
local function cut_info(key, now)
  local c = redis.call('HMGET', key, 'seq', 'cut', 'cf', 'cp')
  local seq = tonumber(c[1]) or 0
  if seq == 0 then return {0, 0, 1000000, 0} end
  return {seq, now - (tonumber(c[2]) or now), math.floor((tonumber(c[3]) or 1) * 1000000),
          tonumber(c[4]) or 0}
end

local function cap_of(ceiling)
  if ceiling > 0 then return ceiling end
  return MAX_RATE
end
"""

# The sends log (``Keys.rate_sends``): field ``bucket % RING`` holds "bucket:slots".
_SENDS = """
local function bucket_of(field_value)
  local b, n = string.match(field_value, '^(%d+):(%d+)$')
  return tonumber(b), tonumber(n)
end

local function record_sends(key, first, count, interval)
  local add = {}
  for i = 0, count - 1 do
    local b = math.floor((first + i * interval) / BUCKET)
    add[b] = (add[b] or 0) + 1
  end
  local started = false
  for b, n in pairs(add) do
    local field = string.format('%d', b % RING)
    local was = redis.call('HGET', key, field)
    local wb, wn = 0, 0
    if was then wb, wn = bucket_of(was) end
    if wb == b then n = n + wn else started = true end
    redis.call('HSET', key, field, string.format('%d:%d', b, n))
  end
  -- the TTL is renewed once per bucket begun (every 50 ms at most), not per reservation
  if started then redis.call('PEXPIRE', key, math.floor(2 * RING * BUCKET / 1000)) end
end

-- slots reserved in [a, b) (µs), a bucket split pro rata at the edges
local function sends_between(key, a, b)
  local total, all = 0, redis.call('HGETALL', key)
  for i = 2, #all, 2 do
    local wb, wn = bucket_of(all[i])
    local lo = wb * BUCKET
    local overlap = math.min(lo + BUCKET, b) - math.max(lo, a)
    if overlap > 0 then total = total + wn * overlap / BUCKET end
  end
  return total
end
"""

# KEYS[1]: the timeline (the next free slot, µs); KEYS[2]: the rate state; KEYS[3]: the
# sends log.
# ARGV: the ceiling (calls/s, paced; 0 = auto), the longest wait the caller accepts
# (µs), how many consecutive slots to reserve, useful calls to count, the start rate,
# the state's TTL (s), failed calls to count. Returns {the wait before the first
# reserved slot (>= 0), or -(the wait) when it is longer than that and nothing was
# reserved; the interval (µs) used; then cut_info's four numbers}.
RESERVE = (
    _PARAMS
    + _ADVANCE
    + _SENDS
    + """
local now = redis_now()
local ceiling, max_wait, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local st = load(KEYS[2], tonumber(ARGV[5]), now)
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
advance(st, now, slot - now > BINDING, cap_of(ceiling))
save(KEYS[2], st, tonumber(ARGV[6]))
redis.call('HSET', KEYS[2], 'ceil', num(ceiling)) -- the workers' own: status shows it
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[2], 'useful', ARGV[4]) end
if tonumber(ARGV[7] or 0) > 0 then redis.call('HINCRBY', KEYS[2], 'nfail', ARGV[7]) end
local interval = math.max(math.floor(1000000 / st.r), 1)
local wait = slot - now
local c = cut_info(KEYS[2], now)
if wait > max_wait then
  return {-wait, interval, c[1], c[2], c[3], c[4]}
end
redis.call('HINCRBY', KEYS[2], 'calls', count)
local ttl_ms = math.floor((wait + count * interval) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', slot + count * interval), 'PX', ttl_ms)
record_sends(KEYS[3], slot, count, interval)
return {wait, interval, c[1], c[2], c[3], c[4]}
"""
)

# KEYS[1]: the cooldown; KEYS[2]: the rate state; KEYS[3]: the timeline; KEYS[4]: the
# sends log. ARGV: the Retry-After (ms), the shortest Retry-After that pauses the whole
# fleet (ms), the ceiling, the start rate, the state's TTL (s), how long ago the refused
# call was sent (µs; -1: unknown). Returns {the pace now in force
# (calls/s, as a string), then cut_info's four numbers}.
COOL_DOWN = (
    _PARAMS
    + _ADVANCE
    + _SENDS
    + """
local now = redis_now()
local ms, fleet_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local cap = cap_of(tonumber(ARGV[3]))
local st = load(KEYS[2], tonumber(ARGV[4]), now)
redis.call('HINCRBY', KEYS[2], 'n429', 1)
local calls = tonumber(redis.call('HGET', KEYS[2], 'calls')) or 0
local pause = 0
if ms >= fleet_ms and ms > redis.call('PTTL', KEYS[1]) then
  -- what set it, for `status` (store/fleet.py): the Retry-After and when (s)
  redis.call('SET', KEYS[1], string.format('{"retry_after_s": %.3f, "since": %.6f}',
             ms / 1000, now / 1000000), 'PX', ms)
  pause = ms * 1000
end
local before = st.r
local deep = false
if now - st.cut >= EPISODE then
  -- below a fall already: a heavy episode the cut did not end (429s went on after it)
  deep = st.hi > 0 and st.e429 >= STREAK_N and now - st.cut < STREAK and st.fresh == 0
  advance(st, now, false, cap)
  before = st.r
  -- what the provider's window held when it refused the call: our slots in the
  -- second before it was sent (-1: unknown, or a cut since may have moved them)
  local held, sent_ago = -1, tonumber(ARGV[6])
  if sent_ago >= 0 and now - sent_ago - 2 * WINDOW >= st.cut then
    held = sends_between(KEYS[4], now - sent_ago - WINDOW, now - sent_ago)
  end
  -- a stray: at rest (the plateau, or the ceiling) after QUIET_CALLS calls with no
  -- 429, and no overshoot (the window held the pace, or too few of our calls to
  -- say): the limit that pace kept still holds; counted, nothing cut or learned
  -- (at the ceiling only if no 429 came lower: a probe that reached it from a learned
  -- limit below has not rested there)
  local at_plateau = st.w > 0 and math.abs(st.r - plateau_of(st, cap)) <= 0.005 * st.w
  local resting = at_plateau or (st.r >= 0.999 * cap and (st.w == 0 or st.w >= 0.999 * cap))
  local stray = not deep and st.hi == 0 and resting
    and calls - (tonumber(redis.call('HGET', KEYS[2], 'c429')) or 0) >= QUIET
    and (held < DEEP * before or held >= SAME * before)
  if stray then st.l429 = now end
  if not (deep or stray) then
    -- a doubling pace meets a one-second window late: the limit is where it was
    -- a second ago (the calls lag the pace, the window lags the calls); a probe
    -- climbing back likewise
    local doubling = st.w == 0 and st.r < 0.999 * cap
    local backing = st.hi > 0 and st.w > 0 and st.r > st.w and st.r < st.hi
    -- and a probe above the plateau: where its path was a second ago (it began at
    -- the plateau; at the ceiling it stays there). Learning the overshoot (up to
    -- ~10 % when the 429 came), the plateau stayed over the edge and walked down
    -- 2 % per 429, 3-5 of them. (Worked out here, before the hold changes below.)
    local probed = st.w > 0 and st.hold > st.hb and not backing
    local probe_was = st.r
    if probed then
      local s = math.max(st.hold - st.hb - 1.0, 0)
      local path = plateau_of(st, cap) * math.exp(PROBE0 * s + ACCEL * s * s / 2)
      probe_was = math.min(st.r, path)
    end
    if st.r >= NEAR * st.hi then st.hi = 0 end -- the limit did not come back that far
    -- 429s where they began last time: the limit stays put, so probe it less often
    -- (below where a fall began, the limit may come back any time: no doubling)
    local same = st.w > 0 and st.r >= SAME * st.w and st.hi == 0
    local hold_max = same and math.max(HOLD_MAX, HOLD_MAX_CALLS / st.w) or HOLD_MAX
    st.hb = same and math.min(2 * st.hb, hold_max) or (st.hi > 0 and HOLD_BACK or HOLD)
    -- near where the last episode began: an arrival jittered over the edge; cut a
    -- little, and learn the edge as a little lower (the plateau follows it down)
    local near = st.w > 0 and st.fresh == 0 and st.r >= NEAR * st.w
    local w_was = st.w
    if doubling then
      st.w = st.r * FRESH_BACK
    elseif backing then
      st.w = math.max(st.r * BACK_LATE, st.w)
    elseif probed then
      st.w = probe_was
    elseif at_plateau then
      -- the plateau drew it: over the edge, so the next plateau is 2 % under this one
      -- (learning this pace moved it 1 %, and a plateau over the edge at 50 ms of
      -- jitter walked down one 429 a step: 4-5 of them after auto's start)
      st.w = PLATEAU * st.r
      st.edge = math.max(PLATEAU * st.edge, EDGE_MIN)
    else
      st.w = st.r
    end
    -- the window's own count bounds what is learned: a ceiling 1.5x too high met at
    -- the start learned that ceiling and fell to half of it, and auto's doubling
    -- learned ~5 % over the limit (issue 15's fifth round). Not when it held under
    -- half the pace: our calls were too few to fill it (a 429 of another client's
    -- making, or a stray one), and it says nothing of the pace. The share of it that
    -- is learned is the jitter's edge (EDGE_MIN).
    local overshoot = false
    if held >= DEEP * before then
      st.w = math.min(st.w, st.edge * held)
      overshoot = held < NEAR * before
    end
    -- a probe whose 429 came within NO_ROOM of where the last episode began found no
    -- more room: the plateau it set out from held, so that is kept (learning the
    -- few % above it, the plateau sat over the jitter's edge and walked back down,
    -- one 429 a step). Not below a fall: there w is where the fall left the pace,
    -- not where 429s began.
    if probed and st.w > w_was then
      if NO_ROOM * st.w <= w_was then
        st.w = w_was
      else -- it found room: the edge may have been learned too low
        st.edge = math.min(st.edge / PLATEAU, 1)
      end
    end
    st.r = math.max(((near or overshoot) and GENTLE or BETA) * st.w, MIN_RATE)
    -- an overshoot, not a fall: never escalated (the window it overfilled drains)
    st.fresh = (doubling or backing or overshoot) and 1 or 0
    if overshoot and not (doubling or backing or probed) then
      -- a steady pace over the limit filled the window: wait until its excess ages
      -- out, or every call in between meets a full window (a climbing pace's window
      -- holds its slower past: it drains as fast as the new pace fills it)
      pause = math.max(pause, math.min((1 - held / before) * WINDOW, STREAK_PAUSE))
    end
    st.cut = now
    st.hold = 0
    -- a stray just before: this 429 is its episode's second (a fall escalates as soon)
    st.e429 = (now - st.l429 < EPISODE) and 2 or 1
  end
else
  st.e429 = st.e429 + 1
  -- STREAK_N within one episode: no jitter over the edge does that twice as fast
  -- as the pace; each further call at the old pace would meet a full window
  -- (not below a fall already: calls sent before its cut answer 429 in a run too, and
  -- with 2 workers escalating on them halved the pace twice, to a quarter)
  deep = st.e429 == STREAK_N and st.fresh == 0 and st.hi == 0
end
if deep then
  -- the pace it fell from, to climb back to fast, if it ever worked (the episode
  -- began after a whole window of calls): a ceiling too high met at the start,
  -- climbed back to in 2 s, fell a second time (issue 15's bench: 12 429s at the
  -- start of the 60/second case); else the pace it falls to, nothing to climb back
  -- to but below a fall all the same
  local worked = st.cut - st.born >= WINDOW
  st.hi = math.max(st.hi, worked and st.w or DEEP * st.w)
  st.hiat = now
  st.r = math.max(DEEP * st.w, MIN_RATE)
  st.fresh = 0
  st.w = st.r -- the old limit is no guide: hold here, then probe from here
  st.hb = HOLD_BACK
  pause = math.max(pause, math.min(ms * 1000, STREAK_PAUSE))
  st.cut = now
  st.hold = 0
  st.e429 = 1
end
save(KEYS[2], st, tonumber(ARGV[5]))
redis.call('HSET', KEYS[2], 'c429', string.format('%d', calls))
if st.r < before or pause > 0 then
  -- stretch what is already reserved, as the workers stretch the slots they hold
  local factor = before / st.r
  local slot = tonumber(redis.call('GET', KEYS[3]) or 0)
  local moved = now + pause + math.max(slot - now, 0) * factor
  -- slots moved past KEEP are given up by their holders: the timeline starts there
  moved = math.max(now + pause, math.min(moved, now + KEEP))
  redis.call('SET', KEYS[3], string.format('%d', moved),
             'PX', math.floor((moved - now) / 1000) + 1000)
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('HSET', KEYS[2], 'cut', string.format('%d', now), 'cf', num(factor),
             'cp', string.format('%d', pause))
end
local c = cut_info(KEYS[2], now)
return {tostring(st.r), c[1], c[2], c[3], c[4]}
"""
)

# KEYS[1]: the rate state. Returns cut_info's four numbers (a process checks for
# other processes' cuts while one of its threads waits for a slot).
CUT_INFO = (
    _PARAMS
    + _ADVANCE
    + """
return cut_info(KEYS[1], redis_now())
"""
)
