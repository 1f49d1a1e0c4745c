#!/bin/sh
# Flower on ADDRESS:PORT with the login from CLONEQUEUE_FLOWER_BASIC_AUTH (it refuses
# to start without one). It only shows what happens after it starts, so it waits
# until a worker answers `celery inspect ping`. Its /metrics and /healthcheck answer
# without the login (flower #1342): publish PORT to operators and Prometheus only.
set -o errexit -o nounset

while :; do
    status=0
    clonequeue inspect ping --timeout 5 >/dev/null || status=$?
    if [ "$status" -eq 0 ]; then
        break
    fi
    if [ "$status" -eq 2 ]; then
        exit 2  # a configuration error (printed above) will not go away by waiting
    fi
    echo "start-flower: no worker answers celery inspect ping yet; retrying" >&2
    sleep "${WAIT_INTERVAL_S:-5}"
done

exec clonequeue flower --address "${ADDRESS:-0.0.0.0}" --port "${PORT:-5555}" "$@"
