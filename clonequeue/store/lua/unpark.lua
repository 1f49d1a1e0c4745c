-- Release parked steps into free slots (the watchdog and `resume` call this).
-- ARGV: ns, now, cap, grace_s, limit
return unpark(tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
