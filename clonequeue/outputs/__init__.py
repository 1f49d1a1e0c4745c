"""What a pipeline gets once a job is finished: signed webhooks and durable artifact copies.

The truth stays in our records, and follow-ups come from our own state changes:

    job terminal ──(Lua commit)──▶ <ns>:events stream
    results pass (beat, every RESULTS_INTERVAL_S) ── XREADGROUP / XAUTOCLAIM ──▶ plan.py
        └─ records a delivery / download (items.py: state, attempts, next attempt due)
           first, then publishes its task; XACK only after that
    webhook / artifact task ── claim (lease) ──▶ one attempt ──▶ record it, schedule the next
    the same pass re-drives items whose next attempt is overdue (a lost message, a
    killed worker, a retry too far off for a countdown)
"""
