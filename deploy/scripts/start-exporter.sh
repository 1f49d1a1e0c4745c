#!/bin/sh
# The fleet's state from Redis (jobs by state, queue depths, in flight, parked,
# paused, spend) as Prometheus metrics on ADDRESS:PORT/metrics. One per fleet.
set -o errexit -o nounset

exec clonequeue exporter --host "${ADDRESS:-0.0.0.0}" --port "${PORT:-9808}" "$@"
