#!/bin/sh
# The watchdog scheduler (Celery beat). Run exactly one per fleet: a second one is
# harmless (the watchdog is idempotent) but doubles its work.
set -o errexit -o nounset

exec clonequeue beat "$@"
