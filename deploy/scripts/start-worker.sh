#!/bin/sh
# A Celery worker (threads pool) consuming QUEUES (comma-separated: submit, produce,
# poll), serving its Prometheus counters on METRICS_PORT (0: off). Settings come
# from CLONEQUEUE_* variables; the token from CLONEQUEUE_API_TOKEN_FILE. Further
# arguments go to `celery worker` (e.g. --hostname, --concurrency).
set -o errexit -o nounset

exec clonequeue worker \
    --queues "${QUEUES:-submit,produce,poll}" \
    --metrics-port "${METRICS_PORT:-9809}" \
    "$@"
